/* examples/ws_client.c -- the seed's WebSocket client: connect, send "Hello server!",
 * print the reply.
 *
 *   async def hello():
 *       async with websockets.connect("ws://localhost:8765") as websocket:
 *           await websocket.send("Hello server!")
 *           response = await websocket.recv()
 *           print(f"Received: {response}")
 *
 * Against examples/ws_echo_server (or the seed's Python server) it prints
 * "Received: Echo: Hello server!".
 *
 * Usage: ws_client [URL]   (default ws://localhost:8765) */
#include <cipc.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "ws://localhost:8765";
    cipc_wsc *ws = NULL;
    int rc = cipc_wsc_connect(url, &(cipc_ws_client_opts){.connect_timeout_ms = 5000}, NULL, &ws);
    if (rc < 0) {
        fprintf(stderr, "ws_client: %s\n", ws ? cipc_wsc_errmsg(ws) : cipc_strerror(rc));
        cipc_wsc_free(ws);
        return 1;
    }
    cipc_ws_msg m;
    if ((rc = cipc_wsc_send_text(ws, "Hello server!")) < 0 ||
        (rc = cipc_wsc_recv(ws, &m, 5000)) < 0) {
        fprintf(stderr, "ws_client: %s\n", cipc_strerror(rc));
        cipc_wsc_free(ws);
        return 1;
    }
    printf("Received: %.*s\n", (int)m.len, (const char *)m.data);
    cipc_wsc_close(ws, CIPC_WS_CLOSE_NORMAL, NULL);
    cipc_wsc_free(ws);
    return 0;
}
