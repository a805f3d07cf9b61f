// Store::Run for stores without a cheaper way to batch: one op at a time.
#include "webtier/cache/store.h"

#include <charconv>

namespace webtier::cache {
namespace {

// A failure of the store itself (not an answer about the data).
bool Unreachable(const Status& s) {
  return s.code() == ErrorCode::kUnavailable || s.code() == ErrorCode::kTimeout ||
         s.code() == ErrorCode::kConnectionLoss;
}

}  // namespace

uint64_t PurgeSeqOf(const Status& read, const std::string& value) {
  uint64_t seq = 0;
  if (!read.ok()) return 0;
  std::from_chars(value.data(), value.data() + value.size(), seq);
  return seq;
}

Status Store::Run(std::vector<StoreOp>* ops) {
  for (StoreOp& op : *ops) {
    switch (op.kind) {
      case StoreOp::Kind::kGet: op.status = Get(op.key, &op.result); break;
      case StoreOp::Kind::kPut: op.status = Put(op.key, op.value, op.ttl); break;
      case StoreOp::Kind::kTryLock: op.status = TryLock(op.key, op.value, op.ttl, &op.acquired); break;
      case StoreOp::Kind::kUnlock: op.status = Unlock(op.key, op.value); break;
      case StoreOp::Kind::kPutFill: op.status = PutFill(op.fill, &op.written); break;
    }
    if (Unreachable(op.status)) return op.status;
  }
  return Status::Ok();
}

}  // namespace webtier::cache
