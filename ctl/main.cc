// ukaictl: the operator's command-line tool, a thin client of the Admin gRPC
// service every ukai-node serves (the commands: ctl/ukaictl.h). Exit 0 on
// success; on failure one line "ukaictl: <what went wrong>" on stderr and
// exit 1 (2 for usage errors).
#include "ctl/ukaictl.h"

int main(int argc, char** argv) {
  ukai::ctl::Cli cli;
  return ukai::ctl::RunUkaictl(argc, argv, &cli);
}
