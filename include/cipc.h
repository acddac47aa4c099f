/* cipc.h -- the umbrella header: includes every public cipc header.
 *
 * Anything not declared under include/cipc/ is not public API. Link with
 * `pkg-config --cflags --libs cipc`. */
#ifndef CIPC_H
#define CIPC_H

#include "cipc/broker.h"
#include "cipc/buf.h"
#include "cipc/bus.h"
#include "cipc/error.h"
#include "cipc/http_client.h"
#include "cipc/http_server.h"
#include "cipc/hub.h"
#include "cipc/log.h"
#include "cipc/loop.h"
#include "cipc/pool.h"
#include "cipc/process.h"
#include "cipc/queue.h"
#include "cipc/retry.h"
#include "cipc/time.h"
#include "cipc/tpool.h"
#include "cipc/url.h"
#include "cipc/ws.h"

#endif
