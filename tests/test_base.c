/*
 * test_base: the file helpers of src/base.c on what a hostile user hands
 * them: a FIFO with no writer, a character device and a folder are refused
 * at once by dp_open_read, dp_map_open and dp_read_file (an alarm fails the
 * test instead of letting it hang), and a regular file still reads whole.
 */
#include "harness.h"

#include "base.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_base: blocked for 10 s on a non-regular file\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(2);
    _exit(1);
}

static void test_non_regular(void) {
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    CHECK(mkfifo(fifo, 0600) == 0);
    const char *paths[] = {fifo, "/dev/zero", tmpdir};
    const char *kinds[] = {"a FIFO", "a character device", "a folder"};
    for (int i = 0; i < 3; i++) {
        int fd = 0;
        uint64_t size = 0;
        CHECK(dp_open_read(paths[i], &fd, &size) == DP_ERR_IO);
        CHECK_MSG(strstr(dp_last_error(), kinds[i]) != NULL, "%s", dp_last_error());
        CHECK_EQ_INT(fd, -1);
        struct dp_map map;
        CHECK(dp_map_open(paths[i], &map) == DP_ERR_IO);
        CHECK(map.data == NULL);
        char *text = (char *)1;
        size_t len;
        CHECK(dp_read_file(paths[i], &text, &len) == DP_ERR_IO);
        CHECK(text == NULL);
        CHECK_MSG(strstr(dp_last_error(), kinds[i]) != NULL, "%s", dp_last_error());
        const char *k = dp_file_kind(paths[i]);
        CHECK_MSG(k && !strcmp(k, kinds[i]), "%s", k ? k : "(null)");
    }
    unlink(fifo);
}

static void test_regular(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/plain.txt", tmpdir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs("hello\n", f);
    fclose(f);
    CHECK(dp_file_kind(path) == NULL);
    char none[600];
    snprintf(none, sizeof none, "%s/none", tmpdir);
    CHECK(dp_file_kind(none) == NULL);
    char *text;
    size_t len;
    CHECK(dp_read_file(path, &text, &len) == DP_OK);
    CHECK_EQ_INT(len, 6);
    CHECK(!strcmp(text, "hello\n"));
    free(text);
    struct dp_map map;
    CHECK(dp_map_open(path, &map) == DP_OK);
    CHECK_EQ_INT(map.size, 6);
    CHECK(map.data && !memcmp(map.data, "hello\n", 6));
    dp_map_close(&map);
    unlink(path);
}

static void check_escape(const char *in, size_t n, const char *want) {
    char buf[256];
    dp_escape(in, n, buf, sizeof buf);
    CHECK_MSG(!strcmp(buf, want), "got '%s', want '%s'", buf, want);
}

static void test_escape(void) {
    check_escape("plain text, 1.0", 15, "plain text, 1.0");
    check_escape("a\x06" "b", 3, "a\\x06" "b");
    check_escape("\x01\x1f\x7f\n\r\t", 6, "\\x01\\x1f\\x7f\\x0a\\x0d\\x09");
    check_escape("\xff\xfe", 2, "\\xff\\xfe");
    check_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    check_escape("\xc0\xaf", 2, "\\xc0\\xaf");             /* overlong '/' */
    check_escape("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");    /* a UTF-16 surrogate */
    check_escape("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
    check_escape("x\xe2\x82", 3, "x\\xe2\\x82");           /* a sequence cut short */
    check_escape("a\0b", 3, "a\\x00b");
    char small[8];
    dp_escape("abcdefghij", 10, small, sizeof small);
    CHECK_MSG(!strcmp(small, "abcd..."), "%s", small);
    dp_escape("\x01\x02\x03", 3, small, sizeof small);
    CHECK_MSG(!strcmp(small, "\\x01..."), "%s", small); /* never half an escape */
    char once[64], twice[64];
    dp_escape("k\x06\xff", 3, once, sizeof once);
    dp_escape(once, strlen(once), twice, sizeof twice);
    CHECK(!strcmp(once, twice));
    CHECK(dp_fail(DP_ERR_FORMAT, "%s: key '%s'", "f.gguf", "ab\x06\x1b[2J") == DP_ERR_FORMAT);
    CHECK_MSG(!strcmp(dp_last_error(), "f.gguf: key 'ab\\x06\\x1b[2J'"), "%s", dp_last_error());
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_base.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    signal(SIGALRM, on_alarm);
    alarm(10);
    test_non_regular();
    test_regular();
    alarm(0);
    test_escape();
    rmdir(tmpdir);
    return TEST_END();
}
