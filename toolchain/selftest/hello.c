/* Toolchain self-test (C): libc basics that a static musl binary must get
 * right. The expected output is in src/selftest.rs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

int main(void) {
    char buf[64];
    long sum = 0;
    for (int i = 1; i <= 100; i++)
        sum += i;
    snprintf(buf, sizeof buf, "%ld/%.3f/%s", sum, sqrt(2.0), getenv("NODEOS_SELFTEST") ? "env" : "noenv");
    char *copy = strdup(buf);
    printf("c: %s len=%zu\n", copy, strlen(copy));
    free(copy);
    return 0;
}
