/*
 * ringfuse-passthrough capabilities. A daemon running as root serves every user of the machine,
 * so the threads that act for them keep only what acting for them takes:
 *   CAP_SETUID, CAP_SETGID   switching the filesystem identity (creds.c)
 *   CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_MKNOD
 *                            root's rights over files; the kernel takes them away from the
 *                            effective set whenever the filesystem uid is not 0, and gives
 *                            them back when it is (so they only work for root callers)
 * and, permitted but not effective, raised only around the one call that needs them:
 *   CAP_SYS_ADMIN            registering and dropping kernel-passthrough backing files;
 *                            trusted.* and security.* attributes for a caller the kernel found
 *                            to hold it; unmounting at the end (the library raises it back)
 *   CAP_SETFCAP              security.capability for a caller the kernel found to hold it
 * Everything else goes, CAP_SYS_RESOURCE (reserved blocks, quotas, limits) first among them.
 * Capability sets belong to threads: caps_init() runs on the thread that starts the others
 * (in init, before the transport's threads exist), so every serving thread inherits the
 * reduced sets and no request pays for them.
 */
#include "passthrough.h"

#define CAP_BIT(c) (1u << (c))

/* What serving keeps effective, and what it may raise for a moment. */
static const uint32_t serving = CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_CHOWN) |
				CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_DAC_READ_SEARCH) |
				CAP_BIT(CAP_FOWNER) | CAP_BIT(CAP_FSETID) | CAP_BIT(CAP_MKNOD);
static const uint32_t on_demand = CAP_BIT(CAP_SYS_ADMIN) | CAP_BIT(CAP_SETFCAP);

static int caps_get(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};

	return syscall(SYS_capget, &h, d) < 0 ? neg_errno() : 0;
}

/* Sets of the calling thread only. */
static int caps_set(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};

	return syscall(SYS_capset, &h, d) < 0 ? neg_errno() : 0;
}

int caps_init(void)
{
	struct __user_cap_data_struct d[2];
	int err = caps_get(d);

	if (err)
		return err;
	d[0].permitted &= serving | on_demand;
	d[0].effective &= serving;
	d[0].inheritable = 0;
	d[1].permitted = d[1].effective = d[1].inheritable = 0;
	return caps_set(d);
}

/* Add cap (one of the permitted ones) to this thread's effective set. */
int caps_raise(int cap)
{
	struct __user_cap_data_struct d[2];
	int err = caps_get(d);

	if (!err && !(d[0].effective & CAP_BIT(cap))) {
		d[0].effective |= CAP_BIT(cap);
		err = caps_set(d);
	}
	return err;
}

void caps_lower(int cap)
{
	struct __user_cap_data_struct d[2];

	if (caps_get(d) == 0 && (d[0].effective & CAP_BIT(cap))) {
		d[0].effective &= ~CAP_BIT(cap);
		caps_set(d);
	}
}
