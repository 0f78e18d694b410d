// BlockIo: the node's block reads, writes and flushes, each admitted by the
// DiskRegistry (layout version, writer epoch, known disk) and checked against
// the disk's geometry before the store sees it. Served over the block I/O
// transport (common/wire_server.h) as its handler; the methods are public so
// tests call them directly.
//
// Thread-safe: called from every connection's thread at once.
#ifndef UKAI_NODE_BLOCK_IO_H_
#define UKAI_NODE_BLOCK_IO_H_

#include "common/wire_format.h"
#include "common/wire_server.h"
#include "node/block_store.h"
#include "node/disk_registry.h"
#include "ukai.pb.h"

namespace ukai::node {

// The most pages one kPull asks for (1 MiB).
constexpr uint32_t kMaxPullPages = 256;
// Reads up to this size that wait for the disk go to the server's io_uring;
// larger ones to its worker threads, which check and copy them in parallel.
constexpr uint32_t kMaxRingRead = 128 << 10;

class BlockIo final : public wire::WireHandler {
 public:
  BlockIo(DiskRegistry* disks, BlockStore* store) : disks_(disks), store_(store) {}

  // Codes: NOT_FOUND (unknown disk), FAILED_PRECONDITION (older layout),
  // PERMISSION_DENIED (older or no writer epoch), INVALID_ARGUMENT /
  // OUT_OF_RANGE (outside the block or disk), store errors as they are.
  absl::Status Write(const pb::WriteRequest& req, absl::string_view data, const Caller& who = {});
  // As Write; DATA_LOSS when a page fails its checksum (the client reads
  // another replica). `out` gets exactly req.length() bytes on OK. With
  // `may_block` false, WouldBlock() when the pages are not in memory.
  absl::Status Read(const pb::ReadRequest& req, std::string* out, bool may_block = true,
                    const Caller& who = {});
  // The stored pages of req.pages() pages from req.first_page() of one
  // object, laid out as wire_format.h says for kPull (a background copy's
  // source side). Admitted as a read; INVALID_ARGUMENT / OUT_OF_RANGE for a
  // range outside the block or more than kMaxPullPages pages.
  absl::Status Pull(const pb::PullRequest& req, std::string* out);
  // Copy-on-write of one object into a new generation (pb::CopyUpRequest),
  // admitted as a write; durable when it returns OK.
  absl::Status CopyUp(const pb::CopyUpRequest& req, const Caller& who = {});
  // Durable: every write acknowledged before survives a crash after OK.
  absl::Status Flush() { return store_->Sync(); }

  // Read without waiting: from memory, or (`*deferred` set, WouldBlock())
  // as file reads for the caller to do (WireHandler::HandleNoWait); reads
  // over kMaxRingRead, or of pages whose index is not in memory, just say
  // WouldBlock() (a worker thread reads them).
  absl::Status ReadNoWait(const pb::ReadRequest& req, std::string* out,
                          std::unique_ptr<Deferred>* deferred, const Caller& who = {});

  // wire::WireHandler: authorizes the peer (Authorize), decodes the
  // frame's meta and dispatches with the peer as Caller (CallerOf).
  absl::Status Handle(const wire::WirePeer& peer, uint16_t method, absl::string_view meta,
                      absl::string_view data, std::string* reply_data, bool may_block) override;
  absl::Status HandleNoWait(const wire::WirePeer& peer, uint16_t method, absl::string_view meta,
                            absl::string_view data, std::string* reply_data,
                            std::unique_ptr<Deferred>* deferred) override;
  bool Slow(uint16_t method) const override;
  bool Background(uint16_t method) const override { return method == wire::kPull; }

 private:
  // Admitted and inside the disk and block.
  absl::StatusOr<Admission> AdmitRead(const pb::ReadRequest& req, const Caller& who);

  DiskRegistry* disks_;
  BlockStore* store_;
};

// Which block I/O methods a peer may send (docs/SECURITY.md, "Authorization"):
// a certified peer by its role; a same-host peer (root or the node's user)
// and a plaintext one (--insecure-plaintext) anything. PERMISSION_DENIED
// saying who was refused what.
absl::Status Authorize(const wire::WirePeer& peer, uint16_t method);
// What admission checks of a peer's requests: a frontend's or admin's writes
// must come from the writer epoch's holder; a backup reads snapshots only.
Caller CallerOf(const wire::WirePeer& peer);

// Checks that [offset, offset+len) of `block` lies inside the block and the
// disk. INVALID_ARGUMENT / OUT_OF_RANGE naming the disk and block.
absl::Status CheckRange(uint64_t disk, const DiskGeometry& g, uint64_t block, uint64_t offset,
                        uint64_t len);
// INVALID_ARGUMENT for generations the store keeps for itself (kMarkGeneration).
absl::Status CheckGeneration(uint64_t generation);
// A whole object: `block` inside the disk and `generation` not the store's own.
absl::Status CheckObject(uint64_t disk, const DiskGeometry& g, uint64_t block, uint64_t generation);
// The 4 KiB pages of `block` (the disk's last block may be short; a partial
// page counts whole).
uint32_t PagesInBlock(const DiskGeometry& g, uint64_t block);

}  // namespace ukai::node

#endif  // UKAI_NODE_BLOCK_IO_H_
