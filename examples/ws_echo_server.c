/* examples/ws_echo_server.c -- the seed's WebSocket echo server: every text message gets
 * the reply "Echo: <message>".
 *
 *   async def echo(websocket, path):
 *       async for message in websocket:
 *           await websocket.send(f"Echo: {message}")
 *   start_server = websockets.serve(echo, "localhost", 8765)
 *
 * The endpoint is "/" on the HTTP server's port, so ws://localhost:8765 reaches it, as
 * with the Python server. Binary messages are echoed back unchanged.
 *
 * Usage: ws_echo_server [--port N]   (default 8765; 0 picks a free port and prints it) */
#include <cipc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void echo(cipc_ws *ws, int type, const void *data, size_t len, void *ud)
{
    (void)ud;
    if (type == CIPC_WS_BINARY) {
        cipc_ws_send(ws, CIPC_WS_BINARY, data, len);
        return;
    }
    char *reply = malloc(len + 7);
    if (!reply)
        return;
    memcpy(reply, "Echo: ", 6);
    memcpy(reply + 6, data, len);
    cipc_ws_send(ws, CIPC_WS_TEXT, reply, len + 6);
    free(reply);
}

static void on_ready(cipc_server *srv, void *ud)
{
    (void)ud;
    printf("PORT %d\n", cipc_server_port(srv));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int port = 8765;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
    }
    cipc_server *srv = NULL;
    int rc = cipc_server_new(
        &(cipc_server_opts){.port = port, .workers = 1, .on_ready = on_ready}, &srv);
    if (rc < 0) {
        fprintf(stderr, "ws_echo_server: %s\n", cipc_strerror(rc));
        return 1;
    }
    cipc_route_ws(srv, "/", &(cipc_ws_handlers){.on_message = echo}, NULL);
    rc = cipc_server_run(srv); /* until SIGINT or SIGTERM */
    if (rc < 0)
        fprintf(stderr, "ws_echo_server: %s\n", cipc_server_errmsg(srv));
    cipc_server_free(srv);
    return rc < 0 ? 1 : 0;
}
