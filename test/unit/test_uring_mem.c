/*
 * Ring entry memory (lib/transport/uring_mem.c) without a kernel FUSE connection: reserving,
 * growing, what is resident, and giving an idle entry's payload back while a request may be
 * copied into it. The kernel's copy is played by this program writing into the entry, before
 * or after the pages are moved away; either way the request's bytes must survive.
 *
 * Exit status 0 when every check passed, 1 otherwise; each check prints one line.
 */
#include "check.h"
#include "transport/uring_mem.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define KiB	1024u
#define PAYLOAD (64 * KiB)

static bool all_bytes(const char *p, size_t len, char c)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			return false;
	return true;
}

int main(void)
{
	struct rf_entry_mem m;
	struct rf_trimmer t;
	char *p0, *p1;
	int ret;

	ret = rf_entry_mem_reserve(&m, 8, 512, PAYLOAD - 100);
	CHECK(ret == 0 && m.payload == PAYLOAD && m.hdr_area == 4 * KiB && m.usable == 0,
	      "reserve 8 entries: payloads rounded to pages, headers in one page");
	CHECK(rf_entry_mem_extend(&m, 2) == 0 && m.usable == 2, "two entries usable");
	CHECK(rf_entry_mem_resident(&m) == 0, "nothing resident before it is touched");
	p0 = rf_entry_mem_payload(&m, 0);
	p1 = rf_entry_mem_payload(&m, 1);
	memset(p0, 'a', PAYLOAD);
	memset(rf_entry_mem_hdr(&m, 1), 'h', 512);
	CHECK(rf_entry_mem_resident(&m) == PAYLOAD, "one payload written: %llu KiB resident",
	      (unsigned long long)rf_entry_mem_resident(&m) / KiB);
	memset(p1, 'b', 3 * 4 * KiB);
	CHECK(rf_entry_mem_resident(&m) == PAYLOAD + 12 * KiB, "three pages of the second");
	CHECK(rf_entry_mem_extend(&m, 9) < 0 && rf_entry_mem_extend(&m, 8) == 0 && m.usable == 8,
	      "grows to the reservation, not past it");
	memset(rf_entry_mem_payload(&m, 7), 'c', 10);
	CHECK(rf_entry_mem_resident(&m) == PAYLOAD + 16 * KiB, "the last entry is usable");

	ret = rf_trimmer_init(&t, PAYLOAD);
	CHECK(ret == 0, "trimmer: scratch area and pagemap (%d)", ret);

	/* Idle entry, no request meanwhile: the memory goes, the entry reads zeros. */
	CHECK(rf_trim_begin(&t, p0) == 0, "trim an idle entry");
	rf_trim_end(&t);
	CHECK(rf_entry_mem_resident(&m) == 16 * KiB, "its pages are given back (%llu KiB resident)",
	      (unsigned long long)rf_entry_mem_resident(&m) / KiB);
	memset(p0, 'd', 100);
	CHECK(rf_entry_mem_resident(&m) == 20 * KiB && all_bytes(p0, 100, 'd') &&
		      all_bytes(p0 + 100, 4 * KiB - 100, 0),
	      "it takes a new request: one page faults back in, zeros around the request");

	/* A request copied in just before the move: its bytes are in the scratch area. */
	memset(p1, 'r', 5000);
	CHECK(rf_trim_begin(&t, p1) == 0, "trim an entry the kernel just filled");
	CHECK(rf_trim_restore(&t, p1, 5000) && all_bytes(p1, 5000, 'r'),
	      "the request's 5000 bytes are put back");
	rf_trim_end(&t);

	/* A request copied in just after the move: its bytes are in the entry, keep them. */
	CHECK(rf_trim_begin(&t, p1) == 0, "trim again");
	memset(p1, 's', 300);
	CHECK(!rf_trim_restore(&t, p1, 300) && all_bytes(p1, 300, 's'),
	      "a request that came after the move is left alone");
	rf_trim_end(&t);
	CHECK(!rf_trim_restore(&t, p1, 0), "an empty request needs nothing back");

	/* Many rounds, a check of the memory each time. */
	{
		bool ok = true;

		for (int i = 0; i < 200 && ok; i++) {
			char c = (char)('A' + i % 26);

			if (i % 2)
				memset(p0, c, 8 * KiB);
			ok = rf_trim_begin(&t, p0) == 0;
			if (i % 3 == 0)
				memset(p0, (char)(c + 1), 8 * KiB);
			if (i % 2 || i % 3 == 0)
				rf_trim_restore(&t, p0, 8 * KiB);
			rf_trim_end(&t);
			ok = ok && (i % 3 == 0 ? all_bytes(p0, 8 * KiB, (char)(c + 1))
				    : i % 2    ? all_bytes(p0, 8 * KiB, c)
					       : all_bytes(p0, 8 * KiB, 0));
		}
		CHECK(ok, "200 trims with requests before, after and without: no byte lost");
	}
	rf_trimmer_release(&t);
	rf_entry_mem_release(&m);
	return check_summary();
}
