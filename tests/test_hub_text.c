/* The hub's text encoders: JSON strings (escaped, and checked by parsing them back with
 * jansson for every byte value), message data (UTF-8 as "data", anything else as
 * "data_base64"), and SSE events (every line ending of the payload becomes a data: line,
 * and a browser's EventSource rebuilds the payload with \n). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "hub/internal.h"

static char *text(cipc_buf *b)
{
    cipc_buf_append(b, "", 1);
    b->len--;
    return b->data;
}

static void json_strings(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    cipc__hub_json_str(&b, "a\"b\\c\nd\x01", 8);
    CHECK_STR(text(&b), "\"a\\\"b\\\\c\\nd\\u0001\"");
    /* every byte below 0x80, alone and inside text, survives a jansson round trip */
    for (int c = 0; c < 0x80; c++) {
        char in[3] = {'x', (char)c, 'y'};
        b.len = 0;
        cipc__hub_json_str(&b, in, 3);
        json_error_t err;
        json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        CHECK(j != NULL);
        CHECK_INT(json_string_length(j), ==, 3);
        CHECK(memcmp(json_string_value(j), in, 3) == 0);
        json_decref(j);
    }
    cipc_buf_free(&b);
}

static void data_fields(void)
{
    cipc_buf b = CIPC_BUF_INIT;
    cipc__hub_json_data(&b, "h\xc3\xa9llo", 6);
    CHECK_STR(text(&b), "\"data\":\"h\xc3\xa9llo\"");
    b.len = 0;
    cipc__hub_json_data(&b, "\xff\x00\x01", 3); /* not UTF-8 */
    CHECK_STR(text(&b), "\"data_base64\":\"/wAB\"");
    b.len = 0;
    cipc__hub_json_data(&b, "", 0);
    CHECK_STR(text(&b), "\"data\":\"\"");
    json_t *o = cipc__hub_data_json(json_object(), "\xc3\x28", 2); /* invalid sequence */
    CHECK_STR(json_string_value(json_object_get(o, "data_base64")), "wyg=");
    CHECK(json_object_get(o, "data") == NULL);
    json_decref(o);
    cipc_buf_free(&b);
}

/* What an EventSource would make of one event: the data lines joined with \n. */
static void sse_parse(const char *ev, char *data, char *id, char *event)
{
    data[0] = id[0] = event[0] = '\0';
    int first = 1;
    for (const char *p = ev; *p && *p != '\n';) {
        const char *e = strchr(p, '\n');
        CHECK(e != NULL);
        if (!strncmp(p, "data: ", 6)) {
            if (!first)
                strcat(data, "\n");
            strncat(data, p + 6, (size_t)(e - p - 6));
            first = 0;
        } else if (!strncmp(p, "id: ", 4)) {
            strncat(id, p + 4, (size_t)(e - p - 4));
        } else if (!strncmp(p, "event: ", 7)) {
            strncat(event, p + 7, (size_t)(e - p - 7));
        } else {
            CHECK(!"unexpected line");
        }
        p = e + 1;
    }
}

static void sse_events(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"hello", "hello"},   {"", ""},          {"a\nb", "a\nb"},     {"a\r\nb", "a\nb"},
        {"a\rb", "a\nb"},     {"a\n", "a\n"},    {"\n\n", "\n\n"},     {"a\r\n\r\nb", "a\n\nb"},
        {"\r", "\n"},         {"x\n\ry", "x\n\ny"},
    };
    cipc_buf b = CIPC_BUF_INIT;
    char data[256], id[32], event[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b.len = 0;
        cipc__hub_sse_event(&b, NULL, 42, cases[i].in, strlen(cases[i].in));
        text(&b);
        CHECK(b.len >= 2 && !strcmp(b.data + b.len - 2, "\n\n")); /* blank line ends it */
        sse_parse(b.data, data, id, event);
        CHECK_STR(data, cases[i].want);
        CHECK_STR(id, "42");
        CHECK_STR(event, "");
    }
    b.len = 0;
    cipc__hub_sse_event(&b, "gap", 0, "{\"from\":1,\"to\":2}", 17);
    CHECK_STR(text(&b), "event: gap\ndata: {\"from\":1,\"to\":2}\n\n");
    cipc_buf_free(&b);
}

int main(void)
{
    json_strings();
    data_fields();
    sse_events();
    puts("test_hub_text: ok");
    return 0;
}
