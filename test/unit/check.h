/*
 * The unit tests' one assertion: CHECK(cond, fmt, ...) prints "ok   - what" or
 * "FAIL - file:line: what" and counts; check_summary() prints the tally and gives the exit
 * status (0 when every check passed). Single-threaded: call CHECK from the test's main thread.
 */
#ifndef RF_TEST_CHECK_H
#define RF_TEST_CHECK_H

#include <stdio.h>

static int checks, failures;

#define CHECK(cond, ...)                                              \
	do {                                                          \
		checks++;                                             \
		if (cond) {                                           \
			printf("ok   - ");                            \
		} else {                                              \
			failures++;                                   \
			printf("FAIL - %s:%d: ", __FILE__, __LINE__); \
		}                                                     \
		printf(__VA_ARGS__);                                  \
		printf("\n");                                         \
	} while (0)

static inline int check_summary(void)
{
	printf("%d/%d checks passed\n", checks - failures, checks);
	return failures ? 1 : 0;
}

#endif /* RF_TEST_CHECK_H */
