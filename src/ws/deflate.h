/* src/ws/deflate.h -- permessage-deflate compression (RFC 7692 section 7.2) over zlib's
 * raw deflate, private to cipc.
 *
 * One struct per connection holds both directions: our compressor ("tx") and the
 * decompressor of the peer's messages ("rx"). Each zlib stream is created on its first
 * use, so a connection that never sends (or never receives) a compressed message never
 * pays for that direction, and cipc__ws_deflate_trim() gives memory back between messages
 * where no context is kept. Costs, per direction in use: deflate (1 << (bits + 2)) +
 * (1 << (mem_level + 9)) bytes, 256 KiB at 15 bits and memLevel 8 (64 KiB at memLevel 6
 * with 13 bits); inflate about 7 KiB plus a 32 KiB window.
 *
 * Choices:
 * - Compression level: `level` 1..9; 0 picks 1 (Z_BEST_SPEED, zlib's deflate_fast). On
 *   JSON messages of 0.25-4 KiB it compressed 1.3 to 3 times faster than zlib's default
 *   6, for output up to 10% larger (zlib 1.2.13, with and without context takeover).
 *   memLevel comes from agreed->mem_level (0: 8). Note that deflateReset clears a hash
 *   table of 2^(mem_level + 8) bytes (64 KiB at 8), which dominates the cost of small
 *   messages without context takeover; a smaller mem_level helps there.
 * - Our compressor uses the negotiated window for our side (server_max_window_bits when
 *   we are the server, client_max_window_bits as the client, 0 meaning 15).
 * - A negotiated window of 8 bits (256 bytes): zlib cannot make raw deflate data with a
 *   256-byte window (deflateInit2 rejects -8 since zlib 1.2.9; older versions silently
 *   used 9, zlib issue #171), and python-websockets declines or fails such offers for
 *   that reason. We honour it instead: the stream is created with 9 bits and the Z_RLE
 *   strategy, which zlib documents as limiting match distances to one, so no back
 *   reference can reach further than 256 bytes whatever the window; a peer inflating with
 *   a 256-byte window always succeeds (tests/test_ws_deflate.c checks this against
 *   zlib's own inflate at 8 bits). The price is weaker compression (runs and Huffman
 *   coding only) for the rare peer that asks for 8 bits.
 * - The decompressor always uses a 32 KiB window (15 bits): inflating with a window
 *   larger than the peer's is always correct, and it also reads peers whose old zlib
 *   turned a negotiated 8 into 9.
 * - Messages (RFC 7692 7.2.1): a compressed message is the deflate output up to a
 *   Z_SYNC_FLUSH with the trailing 00 00 FF FF removed; an empty message is sent as the
 *   single byte 00 (an empty stored block, RFC 7692 7.2.3.6), which leaves the peer's
 *   context unchanged. On receiving, the 00 00 FF FF tail is appended at the end of each
 *   message; a message with no payload bytes at all is taken as empty; a deflate block
 *   with BFINAL set (RFC 7692 7.2.3.4) ends that deflate stream, and any further bytes of
 *   the message start a new one that keeps the window when context takeover is in use.
 *   A message must end on a block boundary (as the tail makes every conforming message
 *   do), else it is corrupt.
 * - Context takeover: after each message, a side with no_context_takeover resets its
 *   stream (deflateReset / inflateReset); otherwise the window carries over.
 *
 * Threading: a cipc__ws_deflate belongs to one thread at a time (that of its connection);
 * nothing here is global. */
#ifndef CIPC_SRC_WS_DEFLATE_H
#define CIPC_SRC_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "cipc/buf.h"
#include "cipc/error.h"
#include "ws/handshake.h"

struct cipc__ws_deflate; /* per connection, both directions */

/* The default compression level (level 0). */
#define CIPC__WS_DEFLATE_DEFAULT_LEVEL 1

/* Create the contexts for a connection with the `agreed` parameters (copied) in the role
 * `is_server`. `level` is 1..9, or 0 for CIPC__WS_DEFLATE_DEFAULT_LEVEL. No zlib stream
 * is allocated yet.
 * Returns 0 with *out set (free it with cipc__ws_deflate_free()), -EINVAL for a level or
 * a window-bits or mem_level value out of range, or -ENOMEM. */
int cipc__ws_deflate_new(const struct cipc__ws_pmd_params *agreed, bool is_server, int level,
                         struct cipc__ws_deflate **out);

/* Free the contexts and their zlib streams. NULL does nothing. */
void cipc__ws_deflate_free(struct cipc__ws_deflate *d);

/* Compress one whole message p[0..n): append the compressed bytes, without the trailing
 * 00 00 FF FF (RFC 7692 7.2.1), to `out`. Resets the compressor after the message when
 * our side has no context takeover.
 * Ownership: borrows `p`. Returns 0; -ENOMEM or CIPC_EINTERNAL (a zlib failure) with
 * `out` unchanged and the compressor reset, so later messages are still correct. */
int cipc__ws_deflate_message(struct cipc__ws_deflate *d, const void *p, size_t n,
                             struct cipc_buf *out);

/* Decompress the next piece p[0..n) of a compressed message and append the output to
 * `out`; `fin` is true on the message's last piece (then the 00 00 FF FF tail is fed
 * here, and the context is reset when the peer has no context takeover). Pieces may be
 * cut anywhere, and n may be 0.
 * `max_total` bounds out->len: output stops as soon as out->len would exceed it, so no
 * more than max_total + 1 bytes are ever inflated into `out` (it may allocate up to twice
 * that, as cipc_buf grows by doubling), and a compression bomb ends in CIPC_ETOOBIG.
 * Ownership: borrows `p`. Returns 0; CIPC_ETOOBIG; CIPC_EPROTO for corrupt data (or a
 * message that does not end on a block boundary); -ENOMEM; CIPC_EINTERNAL. After an
 * error `out` holds the bytes inflated before it and the decompressor is unusable: every
 * later call returns the same error (the connection must be failed), except that -ENOMEM
 * from the first call of a message (the stream could not be created) is not sticky. */
int cipc__ws_inflate_feed(struct cipc__ws_deflate *d, const void *p, size_t n, bool fin,
                          struct cipc_buf *out, size_t max_total);

/* Free the zlib streams of the directions whose context is not kept between messages
 * (no_context_takeover), when no message is in progress in them; they are created again
 * on their next use. Lets an idle connection hold only this struct. Called by the I/O
 * layer when a connection goes idle, for example. */
void cipc__ws_deflate_trim(struct cipc__ws_deflate *d);

#endif
