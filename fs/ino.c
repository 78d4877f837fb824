/* ino.c - opaque node ids: the database ids inside a node id (provider id;
 * agent id and secret id) are passed through a keyed permutation of 56 bits,
 * so that an inode number shows neither a database id nor how many secrets
 * were made in between, yet stays stable per name and agent (the same key:
 * a subkey of the vault's data key) and decodes back without a table.
 *
 * A balanced Feistel network of 28-bit halves, 6 rounds, with SipHash-2-4
 * (crypto_shorthash) of (round, half) under the key as the round function:
 * a pseudo-random permutation for anyone without the key. Not a secret
 * keeping device for the ids themselves, which are not secret to root. */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "fs/fs.h"

#define HALF_BITS 28
#define HALF_MASK ((1ULL << HALF_BITS) - 1)
#define ROUNDS 6

static unsigned char ino_key[crypto_shorthash_KEYBYTES];

void fs_ino_init(const unsigned char *key)
{
	memcpy(ino_key, key, sizeof ino_key);
}

static uint64_t round_fn(int r, uint64_t half)
{
	unsigned char in[9], out[crypto_shorthash_BYTES];
	uint64_t v = 0;

	in[0] = (unsigned char)r;
	for (int i = 0; i < 8; i++)
		in[1 + i] = (unsigned char)(half >> (8 * i));
	crypto_shorthash(out, in, sizeof in, ino_key);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)out[i] << (8 * i);
	return v & HALF_MASK;
}

uint64_t fs_ino_hide(uint64_t v)
{
	uint64_t l = (v >> HALF_BITS) & HALF_MASK, r = v & HALF_MASK, t;

	for (int i = 0; i < ROUNDS; i++) {
		t = r;
		r = l ^ round_fn(i, r);
		l = t;
	}
	return (l << HALF_BITS) | r;
}

uint64_t fs_ino_show(uint64_t v)
{
	uint64_t l = (v >> HALF_BITS) & HALF_MASK, r = v & HALF_MASK, t;

	for (int i = ROUNDS - 1; i >= 0; i--) {
		t = l;
		l = r ^ round_fn(i, l);
		r = t;
	}
	return (l << HALF_BITS) | r;
}
