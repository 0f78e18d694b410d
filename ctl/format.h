// ukaictl's output: the text and JSON forms of what the admin service
// answers. Pure functions of the answers (no connection), so they are unit
// tested; the Print* ones write to stdout.
#ifndef UKAI_CTL_FORMAT_H_
#define UKAI_CTL_FORMAT_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "ukai.pb.h"

namespace ukai::ctl {

using nlohmann::json;

// Local time "YYYY-MM-DD HH:MM:SS" of a Unix time in ms; "-" for 0.
std::string Time(uint64_t ms);
// "2 replica(s) in sites a,b" / "... on nodes n1,n2".
std::string PlacementText(const pb::Placement& p);
// The disk's failure policy as it acts (defaults filled in).
std::string PolicyText(const pb::DiskSpec& d);
// A disk spec as `disk list`/`disk info --json` show it.
json SpecJson(const pb::DiskSpec& d);
// `disk info`: the spec and, when the answer has them, space, health,
// writer and read locality.
json InfoJson(const pb::DiskInfo& info);
void PrintInfoText(const pb::DiskInfo& info);
// `node list`.
json NodesJson(const pb::ListNodesResponse& resp);
void PrintNodesText(const pb::ListNodesResponse& resp);

}  // namespace ukai::ctl

#endif  // UKAI_CTL_FORMAT_H_
