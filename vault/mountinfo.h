/* mountinfo.h - the mount table of this mount namespace, as scopeholdfs
 * (is the mountpoint served, or dead?) and scopeholdctl status read it. */
#ifndef SCOPEHOLD_MOUNTINFO_H
#define SCOPEHOLD_MOUNTINFO_H

/* The fstype of ScopeHold's mounts in /proc/self/mountinfo. */
#define VAULT_MOUNT_FSTYPE "fuse.scopehold"

/* Call fn(arg, mount point, fstype) for each line of /proc/self/mountinfo,
 * in order (a later line is mounted on top of an earlier one at the same
 * point), with octal escapes undone. fn returns non-zero to stop. 0, or -1
 * when the table cannot be read. */
int vault_mountinfo_each(int (*fn)(void *arg, const char *mp, const char *fstype), void *arg);

#endif
