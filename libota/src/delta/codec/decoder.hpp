// Internal: the streaming decoder of one compressed patch frame, whatever its
// codec (zstd.hpp, lzma.hpp). The patcher owns both buffers and feeds any
// split of the input; the decoder keeps at most its declared window.
#pragma once

#include <cstddef>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::codec {

class FrameDecoder {
 public:
  struct Step {
    std::size_t consumed = 0;  // input bytes used
    std::size_t produced = 0;  // output bytes written
    bool frame_done = false;   // the frame is complete and fully flushed
  };
  virtual ~FrameDecoder() = default;
  // Starts a new frame (drops any state of the previous one); the prefix, if
  // any, must stay valid until the frame is decoded.
  virtual Status reset(ByteSpan prefix = {}) = 0;
  // Makes progress: consumes some input and/or produces some output.
  virtual Result<Step> decode(ByteSpan in, MutableByteSpan out) = 0;
};

}  // namespace ota::codec
