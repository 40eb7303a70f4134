/*
 * Who a request's caller is, beyond what the kernel sends (fs/common/caller.c).
 */
#ifndef RF_FS_CALLER_H
#define RF_FS_CALLER_H

#include "ringfuse.h"

#include <sys/types.h>

/*
 * The caller's supplementary groups, into groups (max of them) or, for a longer list, into an
 * allocation *out then points to (free it when it is not groups). Returns how many: 0 when
 * they cannot be trusted to be the request's.
 */
int caller_groups(const struct rf_ctx *ctx, gid_t groups[], int max, gid_t **out);

#endif /* RF_FS_CALLER_H */
