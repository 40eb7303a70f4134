/*
 * A program on libfuse's high-level API (fuse_main()), linked with the system's libfuse3:
 * ringfuse's libfuse3.so.3 must stop it as it loads, with a message, whether the program binds
 * its symbols at load time or lazily. With --version it runs through fuse_main_real() and exits
 * without mounting, which shows the system's library runs it.
 */
#define FUSE_USE_VERSION 31
#include <fuse.h>

static const struct fuse_operations ops;

int main(int argc, char *argv[])
{
	return fuse_main(argc, argv, &ops, NULL);
}
