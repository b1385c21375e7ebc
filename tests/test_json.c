/* test_json.c — core/json.c: the strict parser (valid and invalid texts, escapes,
 * surrogates, numbers, depth, duplicate keys), the writer (compact and pretty,
 * escaping, non-finite numbers), a round trip, and allocation failure in both. */
#include "testutil.h"

#include "core/json.h"
#include "core/context.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse_ok(nc_context *ctx, const char *text) {
    cJSON *j = NULL;
    nc_status st = nc__json_parse(ctx, text, strlen(text), NULL, &j);
    if (st != NC_OK) fail_msg("'%s': %s", text, nc_context_last_error(ctx));
    return j;
}

static void parse_bad(nc_context *ctx, const char *text, const char *why) {
    cJSON *j = (cJSON *)1;
    nc_status st = nc__json_parse(ctx, text, strlen(text), NULL, &j);
    if (st != NC_ERR_FORMAT) fail_msg("'%s' parsed (status %d)", text, (int)st);
    assert_null(j);
    if (!strstr(nc_context_last_error(ctx), why))
        fail_msg("'%s': message '%s' lacks '%s'", text, nc_context_last_error(ctx), why);
}

static void test_json_parse_values(void **state) {
    tu_fx *f = *state;
    cJSON *j = parse_ok(f->ctx, " {\"a\": [1, -2.5e3, 0, true, false, null], \"b\": {\"c\": \"x\"}, \"d\": []} \n");
    assert_true(cJSON_IsObject(j));
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
    assert_int_equal(cJSON_GetArraySize(a), 6);
    assert_float_equal(cJSON_GetArrayItem(a, 0)->valuedouble, 1.0, 0);
    assert_int_equal(cJSON_GetArrayItem(a, 0)->valueint, 1);
    assert_float_equal(cJSON_GetArrayItem(a, 1)->valuedouble, -2500.0, 0);
    assert_true(cJSON_IsTrue(cJSON_GetArrayItem(a, 3)));
    assert_true(cJSON_IsFalse(cJSON_GetArrayItem(a, 4)));
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(a, 5)));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "b"), "c")->valuestring,
                        "x");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "d")), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "A")); /* case-sensitive */
    nc__json_delete(f->ctx, j);

    /* numbers: exact, and outside int range valueint saturates as cJSON's does */
    j = parse_ok(f->ctx, "[0.1, 1e400, -3e9, 123456789012345678]");
    assert_true(cJSON_GetArrayItem(j, 0)->valuedouble == 0.1);
    assert_true(isinf(cJSON_GetArrayItem(j, 1)->valuedouble));
    assert_int_equal(cJSON_GetArrayItem(j, 2)->valueint, -2147483647 - 1);
    assert_true(cJSON_GetArrayItem(j, 3)->valuedouble == 123456789012345678.0);
    nc__json_delete(f->ctx, j);

    /* duplicate keys are kept in order */
    j = parse_ok(f->ctx, "{\"k\": 1, \"k\": 2}");
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_int_equal(j->child->next->valueint, 2);
    assert_ptr_equal(j->child->prev, j->child->next); /* cJSON's last-item link */
    nc__json_delete(f->ctx, j);
}

static void test_json_parse_strings(void **state) {
    tu_fx *f = *state;
    cJSON *j = parse_ok(f->ctx, "[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\\ud83d\\ude00\", \"\xc3\xa9\"]");
    assert_string_equal(cJSON_GetArrayItem(j, 0)->valuestring, "a\"b\\c/d\b\f\n\r\t");
    assert_string_equal(cJSON_GetArrayItem(j, 1)->valuestring, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_string_equal(cJSON_GetArrayItem(j, 2)->valuestring, "\xc3\xa9");
    nc__json_delete(f->ctx, j);
}

static void test_json_parse_rejects(void **state) {
    tu_fx *f = *state;
    nc_context *ctx = f->ctx;
    parse_bad(ctx, "", "unexpected end");
    parse_bad(ctx, "{", "expected a member name");
    parse_bad(ctx, "{\"a\" 1}", "expected ':'");
    parse_bad(ctx, "{\"a\": 1,}", "expected a member name");
    parse_bad(ctx, "[1,]", "unexpected character");
    parse_bad(ctx, "[1 2]", "expected ',' or ']'");
    parse_bad(ctx, "{} x", "text after the value");
    parse_bad(ctx, "01", "text after the value");
    parse_bad(ctx, "+1", "unexpected character");
    parse_bad(ctx, "1.", "bad number");
    parse_bad(ctx, ".5", "unexpected character");
    parse_bad(ctx, "1e", "bad number");
    parse_bad(ctx, "-", "bad number");
    parse_bad(ctx, "NaN", "unexpected character");
    parse_bad(ctx, "tru", "unexpected character");
    parse_bad(ctx, "\"abc", "unterminated string");
    parse_bad(ctx, "\"a\tb\"", "control character");
    parse_bad(ctx, "\"\\x\"", "bad escape");
    parse_bad(ctx, "\"\\u12g4\"", "bad \\u escape");
    parse_bad(ctx, "\"\\u0000\"", "\\u0000");
    parse_bad(ctx, "\"\\ud800\"", "unpaired surrogate");
    parse_bad(ctx, "\"\\udc00\"", "unpaired surrogate");
    parse_bad(ctx, "\"\\ud800\\u0041\"", "unpaired surrogate");
    char deep[2 * NC__JSON_MAX_DEPTH + 8];
    size_t n = 0;
    for (int i = 0; i <= NC__JSON_MAX_DEPTH; i++) deep[n++] = '[';
    for (int i = 0; i <= NC__JSON_MAX_DEPTH; i++) deep[n++] = ']';
    deep[n] = 0;
    parse_bad(ctx, deep, "nesting too deep");
    deep[n - 1] = 0; /* exactly the limit */
    cJSON *j = parse_ok(ctx, deep + 1);
    nc__json_delete(ctx, j);
}

/* NUL bytes are not the end of the text; `end` gives where the value stopped. */
static void test_json_parse_end(void **state) {
    tu_fx *f = *state;
    const char text[] = "{\"a\":1}   pad";
    const char *end = NULL;
    cJSON *j = NULL;
    assert_int_equal(nc__json_parse(f->ctx, text, sizeof text - 1, &end, &j), NC_OK);
    assert_ptr_equal(end, text + 10);
    nc__json_delete(f->ctx, j);
    const char nul[] = "[1]\0";
    assert_int_equal(nc__json_parse(f->ctx, nul, sizeof nul - 1, NULL, &j), NC_ERR_FORMAT);
}

static char *write_sample(nc_context *ctx, int pretty) {
    nc__jw w;
    nc__jw_init(&w, ctx, pretty);
    nc__jw_object(&w, NULL);
    nc__jw_str(&w, "s", "q\"\\\n\x01\xc3\xa9");
    nc__jw_num(&w, "x", 0.1);
    nc__jw_num(&w, "nan", NAN);
    nc__jw_int(&w, "i", -9007199254740993LL);
    nc__jw_uint(&w, "u", 18446744073709551615ULL);
    nc__jw_bool(&w, "t", 1);
    nc__jw_null(&w, "z");
    nc__jw_str(&w, "none", NULL);
    nc__jw_array(&w, "a");
    nc__jw_num(&w, NULL, 1);
    nc__jw_object(&w, NULL);
    nc__jw_end(&w);
    nc__jw_array(&w, NULL);
    nc__jw_end(&w);
    nc__jw_end(&w);
    nc__jw_object(&w, "o");
    nc__jw_raw(&w, "r", "[true]");
    nc__jw_end(&w);
    nc__jw_end(&w);
    char *text = NULL;
    assert_int_equal(nc__jw_finish(&w, "sample", &text, NULL), NC_OK);
    return text;
}

static void test_json_write(void **state) {
    tu_fx *f = *state;
    char *text = write_sample(f->ctx, 0);
    assert_string_equal(text, "{\"s\":\"q\\\"\\\\\\n\\u0001\xc3\xa9\",\"x\":0.1,\"nan\":null,\"i\":-9007199254740993,"
                              "\"u\":18446744073709551615,\"t\":true,\"z\":null,\"none\":null,\"a\":[1,{},[]],"
                              "\"o\":{\"r\":[true]}}");
    cJSON *j = parse_ok(f->ctx, text); /* reads back */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "s")->valuestring, "q\"\\\n\x01\xc3\xa9");
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "x")->valuedouble == 0.1);
    nc__json_delete(f->ctx, j);
    nc__free(f->ctx, text);

    text = write_sample(f->ctx, 1); /* cJSON_Print's layout */
    assert_string_equal(text, "{\n\t\"s\":\t\"q\\\"\\\\\\n\\u0001\xc3\xa9\",\n\t\"x\":\t0.1,\n\t\"nan\":\tnull,\n"
                              "\t\"i\":\t-9007199254740993,\n\t\"u\":\t18446744073709551615,\n\t\"t\":\ttrue,\n"
                              "\t\"z\":\tnull,\n\t\"none\":\tnull,\n\t\"a\":\t[1, {}, []],\n\t\"o\":\t{\n"
                              "\t\t\"r\":\t[true]\n\t}\n}");
    nc__json_delete(f->ctx, parse_ok(f->ctx, text));
    nc__free(f->ctx, text);
}

/* Misuse (a key in an array, unbalanced ends) is an error, not a broken text. */
static void test_json_write_misuse(void **state) {
    tu_fx *f = *state;
    nc__jw w;
    char *text = (char *)1;
    nc__jw_init(&w, f->ctx, 0);
    nc__jw_array(&w, NULL);
    nc__jw_num(&w, "key", 1);
    nc__jw_end(&w);
    assert_int_equal(nc__jw_finish(&w, "misuse", &text, NULL), NC_ERR_STATE);
    assert_null(text);
    nc__jw_init(&w, f->ctx, 0);
    nc__jw_object(&w, NULL);
    assert_int_equal(nc__jw_finish(&w, "misuse", &text, NULL), NC_ERR_STATE);
}

/* Every allocation of a parse and of a write fails in turn: a clean status, no leak. */
static void test_json_out_of_memory(void **state) {
    tu_fx *f = *state;
    const char *text = "{\"a\": [1, \"two\", {\"b\": null}], \"c\": \"\\u00e9\"}";
    for (long k = 0;; k++) {
        cJSON *j = NULL;
        f->cnt.fail_after = f->cnt.calls + k;
        nc_status st = nc__json_parse(f->ctx, text, strlen(text), NULL, &j);
        f->cnt.fail_after = -1;
        nc__json_delete(f->ctx, j);
        assert_int_equal(f->cnt.live, f->base);
        if (st == NC_OK) break;
        assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
        assert_null(j);
    }
    for (long k = 0;; k++) {
        f->cnt.fail_after = f->cnt.calls + k;
        nc__jw w;
        nc__jw_init(&w, f->ctx, 1);
        nc__jw_array(&w, NULL);
        for (int i = 0; i < 100; i++) nc__jw_str(&w, NULL, "a string long enough to grow the buffer");
        nc__jw_end(&w);
        char *out = NULL;
        nc_status st = nc__jw_finish(&w, "oom", &out, NULL);
        f->cnt.fail_after = -1;
        nc__free(f->ctx, out);
        assert_int_equal(f->cnt.live, f->base);
        if (st == NC_OK) break;
        assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_parse_values, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_json_parse_strings, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_json_parse_rejects, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_json_parse_end, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_json_write, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_json_write_misuse, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_json_out_of_memory, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
