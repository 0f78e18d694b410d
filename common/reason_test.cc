#include "common/reason.h"

#include <gtest/gtest.h>

#include "common/grpc_status.h"
#include "common/status.h"

namespace ukai {
namespace {

TEST(ReasonTest, EachSignalIsItsOwnReasonNotItsCode) {
  EXPECT_TRUE(IsStaleLayout(StaleLayoutError("x")));
  EXPECT_TRUE(absl::IsFailedPrecondition(StaleLayoutError("x")));
  // The same code without the reason is not a stale layout, and a
  // read-only refusal shares the code but not the meaning.
  EXPECT_FALSE(IsStaleLayout(absl::FailedPreconditionError("stale layout")));
  EXPECT_FALSE(IsStaleLayout(ReadOnlyError("x")));
  EXPECT_TRUE(IsReadOnly(ReadOnlyError("x")));
  EXPECT_TRUE(IsFenced(FencedError("x")));
  EXPECT_FALSE(IsFenced(absl::PermissionDeniedError("x")));
  // WouldBlock is known by its reason, not by its message.
  EXPECT_TRUE(IsWouldBlock(WouldBlock()));
  EXPECT_FALSE(IsWouldBlock(absl::ResourceExhaustedError("would block")));
  EXPECT_EQ(ReasonOf(absl::OkStatus()), Reason::kNone);
  EXPECT_TRUE(WithReason(absl::OkStatus(), Reason::kFenced).ok());
}

TEST(ReasonTest, AnnotateKeepsTheReason) {
  absl::Status s = Annotate(StaleLayoutError("disk 1: stale"), "replica n2");
  EXPECT_TRUE(IsStaleLayout(s));
  EXPECT_EQ(s.message(), "replica n2: disk 1: stale");
}

TEST(ReasonTest, TheBlockIoStatusFieldCarriesCodeAndReason) {
  for (const absl::Status& s : {StaleLayoutError("a"), FencedError("b"), ReadOnlyError("c"),
                                WouldBlock(), absl::NotFoundError("d")}) {
    const absl::Status back = DecodeWireStatus(EncodeWireStatus(s), s.message());
    EXPECT_EQ(back.code(), s.code()) << s;
    EXPECT_EQ(ReasonOf(back), ReasonOf(s)) << s;
  }
  EXPECT_EQ(EncodeWireStatus(absl::OkStatus()), 0);
  EXPECT_TRUE(DecodeWireStatus(0, "").ok());
  // A peer's code or reason this build does not know: UNKNOWN, no reason.
  EXPECT_EQ(DecodeWireStatus(200, "x").code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(ReasonOf(DecodeWireStatus((99 << 8) | 9, "x")), Reason::kNone);
}

TEST(ReasonTest, GrpcCarriesTheReasonBothWays) {
  const absl::Status back = FromGrpc(ToGrpc(StaleLayoutError("disk 3: stale layout")));
  EXPECT_TRUE(IsStaleLayout(back));
  EXPECT_EQ(back.message(), "disk 3: stale layout");
  EXPECT_FALSE(IsStaleLayout(FromGrpc(ToGrpc(absl::FailedPreconditionError("other")))));
  EXPECT_FALSE(IsStaleLayout(
      FromGrpc(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "x", "ukai-reason:junk"))));
}

}  // namespace
}  // namespace ukai
