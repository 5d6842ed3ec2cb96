/*
 * nfs-ops: the writes libnfs-utils cannot make (it has only cp, cat and ls),
 * on the same real client library, for the read-only tests.
 *
 *   nfs-ops 'nfs://HOST/EXPORT?version=V' OP ARG...
 *
 * OPs: mkdir DIR | rmdir DIR | unlink FILE | rename FROM TO | chmod FILE MODE(octal)
 *      | chown FILE UID GID | truncate FILE LEN | write FILE (4 bytes at offset 0)
 *      | symlink TARGET LINK | link FILE NEWNAME | creat FILE
 * Paths are relative to the export. Prints "OP ok" or "OP error: <libnfs error> (<errno text>)"
 * and exits 0 or 1.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <stdint.h>
#include <nfsc/libnfs.h>

static int usage(void) {
	fprintf(stderr, "usage: nfs-ops URL OP ARG...\n");
	return 2;
}

int main(int argc, char **argv) {
	if (argc < 4) {
		return usage();
	}
	struct nfs_context *nfs = nfs_init_context();
	if (nfs == NULL) {
		fprintf(stderr, "nfs_init_context failed\n");
		return 2;
	}
	struct nfs_url *url = nfs_parse_url_dir(nfs, argv[1]);
	if (url == NULL) {
		fprintf(stderr, "bad url: %s\n", nfs_get_error(nfs));
		return 2;
	}
	if (nfs_mount(nfs, url->server, url->path) != 0) {
		fprintf(stderr, "mount failed: %s\n", nfs_get_error(nfs));
		return 2;
	}
	const char *op = argv[2];
	int rc;
	struct nfsfh *fh = NULL;
	if (strcmp(op, "mkdir") == 0) {
		rc = nfs_mkdir(nfs, argv[3]);
	} else if (strcmp(op, "rmdir") == 0) {
		rc = nfs_rmdir(nfs, argv[3]);
	} else if (strcmp(op, "unlink") == 0) {
		rc = nfs_unlink(nfs, argv[3]);
	} else if (strcmp(op, "rename") == 0 && argc > 4) {
		rc = nfs_rename(nfs, argv[3], argv[4]);
	} else if (strcmp(op, "chmod") == 0 && argc > 4) {
		rc = nfs_chmod(nfs, argv[3], (int)strtol(argv[4], NULL, 8));
	} else if (strcmp(op, "chown") == 0 && argc > 5) {
		rc = nfs_chown(nfs, argv[3], atoi(argv[4]), atoi(argv[5]));
	} else if (strcmp(op, "truncate") == 0 && argc > 4) {
		rc = nfs_truncate(nfs, argv[3], (uint64_t)atoll(argv[4]));
	} else if (strcmp(op, "write") == 0) {
		rc = nfs_open(nfs, argv[3], O_WRONLY, &fh);
		if (rc == 0) {
			char data[4] = {'r', 'o', '?', '\n'};
			rc = nfs_pwrite(nfs, fh, 0, sizeof data, data);
			rc = rc < 0 ? rc : 0;
			if (rc == 0) {
				rc = nfs_fsync(nfs, fh);
			}
		}
	} else if (strcmp(op, "symlink") == 0 && argc > 4) {
		rc = nfs_symlink(nfs, argv[3], argv[4]);
	} else if (strcmp(op, "link") == 0 && argc > 4) {
		rc = nfs_link(nfs, argv[3], argv[4]);
	} else if (strcmp(op, "creat") == 0) {
		rc = nfs_creat(nfs, argv[3], 0644, &fh);
	} else {
		return usage();
	}
	if (rc == 0) {
		printf("%s ok\n", op);
	} else {
		/* libnfs returns -errno; its error text is empty for some failed writes */
		printf("%s error: %s (%s)\n", op, nfs_get_error(nfs), rc < 0 ? strerror(-rc) : "?");
	}
	if (fh != NULL) {
		nfs_close(nfs, fh);
	}
	nfs_destroy_url(url);
	nfs_destroy_context(nfs);
	return rc == 0 ? 0 : 1;
}
