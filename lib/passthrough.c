/*
 * Kernel passthrough: backing files registered on the session's /dev/fuse fd. The ids are
 * per connection, so the session fd is the one to use whatever transport carries requests.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <sys/ioctl.h>

int rf_passthrough_open(rf_session *se, int fd)
{
	struct fuse_backing_map map = {.fd = fd};
	int ret;

	if (!se || se->fd < 0 || fd < 0)
		return -EINVAL;
	if (!(se->conn.want & RF_CAP_PASSTHROUGH))
		return -EOPNOTSUPP;
	ret = ioctl(se->fd, FUSE_DEV_IOC_BACKING_OPEN, &map);
	return ret < 0 ? -errno : ret;
}

int rf_passthrough_close(rf_session *se, int backing_id)
{
	uint32_t id = (uint32_t)backing_id;

	if (!se || se->fd < 0 || backing_id <= 0)
		return -EINVAL;
	return ioctl(se->fd, FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0 ? -errno : 0;
}
