/* launch_proto.h - the launch socket's wire format, the one wire between
 * scopeholdctl (`run --agent`) and scopeholdfs. A client connects to the
 * Unix stream socket, sends one fixed-size request and reads one fixed-size
 * reply; the daemon identifies the client from the socket (SO_PEERCRED and a
 * pidfd), never from the request, and moves that very process into the
 * agent's launch cgroup before it replies. Anything else closes the
 * connection. Both sides include this header and share no other code. */
#ifndef SCOPEHOLD_LAUNCH_PROTO_H
#define SCOPEHOLD_LAUNCH_PROTO_H

#include <stdint.h>

#define SH_LAUNCH_MAGIC 0x53484c31u /* "SHL1" */
#define SH_LAUNCH_VERSION 1
#define SH_LAUNCH_NAME_MAX 128      /* as VAULT_NAME_MAX */
#define SH_LAUNCH_MSG_MAX 256
#define SH_LAUNCH_DEFAULT_SOCKET "/run/scopehold/launch.sock"
#define SH_LAUNCH_DEFAULT_CGROUP "/scopehold.launch"

/* Little-endian as the host writes it: the socket never leaves the host. */
struct sh_launch_req {
	uint32_t magic;         /* SH_LAUNCH_MAGIC */
	uint16_t version;       /* SH_LAUNCH_VERSION */
	uint16_t name_len;      /* bytes of name used, 1..SH_LAUNCH_NAME_MAX */
	char name[SH_LAUNCH_NAME_MAX]; /* the agent, not NUL-terminated */
};

enum sh_launch_status {
	SH_LAUNCH_OK = 0,       /* msg: the instance cgroup the client is now in */
	SH_LAUNCH_REFUSED = 1,  /* msg: why, one line */
	SH_LAUNCH_FAILED = 2,   /* msg: what failed in the daemon */
	SH_LAUNCH_BUSY = 3,     /* this uid has LAUNCH_PER_UID requests open: try again */
};

struct sh_launch_rep {
	uint32_t magic;
	uint16_t version;
	uint16_t status;        /* enum sh_launch_status */
	char msg[SH_LAUNCH_MSG_MAX]; /* NUL-terminated */
};

#endif
