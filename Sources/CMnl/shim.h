#pragma once
/* Thin shim over libmnl and the rtnetlink headers.
 * Only what Swift cannot import is re-exported here: expression macros become
 * prefixed inline functions. Nothing else lives in this file. */
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>

/* MNL_SOCKET_BUFFER_SIZE is an expression macro (depends on the page size): not imported. */
static inline size_t cmnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
/* MNL_SOCKET_AUTOPID is an int macro imported as Int32 on some toolchains only; pin it. */
static inline unsigned int cmnl_autopid(void) { return MNL_SOCKET_AUTOPID; }
