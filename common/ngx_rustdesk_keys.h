/*
 * The server's Ed25519 key pair (PROTOCOL.md section 5): the files
 * id_ed25519 (base64 of the 64-byte secret key) and id_ed25519.pub (base64
 * of the 32-byte public key), and the signed peer key (IdPk).
 *
 * Plain C on libsodium and protobuf-c, no nginx symbols: runs at
 * configuration time in the master, and the unit tests link it on its own.
 */

#ifndef _NGX_RUSTDESK_KEYS_H_INCLUDED_
#define _NGX_RUSTDESK_KEYS_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>
#include <sodium.h>


#define NGX_RUSTDESK_SK_FILE      "id_ed25519"
#define NGX_RUSTDESK_PK_FILE      "id_ed25519.pub"
#define NGX_RUSTDESK_PK_B64_LEN   44
#define NGX_RUSTDESK_GEN_TRIES    300

/* what load_or_generate did, beyond loading or making the pair */
#define NGX_RUSTDESK_KEYS_GENERATED      0x01
#define NGX_RUSTDESK_KEYS_PUB_WRITTEN    0x02
#define NGX_RUSTDESK_KEYS_PUB_MISMATCH   0x04
#define NGX_RUSTDESK_KEYS_SK_OPEN_MODE   0x08


typedef struct {
    u_char   sk[crypto_sign_SECRETKEYBYTES];    /* seed || public key */
    u_char   pk[crypto_sign_PUBLICKEYBYTES];
    char     pk_b64[NGX_RUSTDESK_PK_B64_LEN + 1];
} ngx_rustdesk_keypair_t;


/*
 * Loads dir/id_ed25519, or generates and writes both files when it does
 * not exist (the directory is created, mode 0700, if missing; the secret
 * file gets mode 0600).  Returns 0 and a mask of NGX_RUSTDESK_KEYS_* in
 * *what, or -1 with a reason in err: a malformed or unreadable existing
 * secret key is never replaced.
 */
int ngx_rustdesk_keys_load_or_generate(const char *dir,
    ngx_rustdesk_keypair_t *kp, unsigned *what, char *err, size_t err_size);

/*
 * Takes a key given as the base64 of a 64-byte secret key.  Returns 0, or
 * -1 when it is not one (it may then be a plain public key string); kp is
 * left untouched then.
 */
int ngx_rustdesk_keys_from_secret_b64(const u_char *b64, size_t len,
    ngx_rustdesk_keypair_t *kp);

/*
 * Makes a pair whose base64 public key has neither '/' nor ':', trying up
 * to NGX_RUSTDESK_GEN_TRIES more times, as the reference does.
 */
void ngx_rustdesk_keys_generate(ngx_rustdesk_keypair_t *kp);

/*
 * The signed peer key: crypto_sign (64-byte signature || message) of the
 * serialized IdPk{id, pk}.  Returns the length written to out, or 0 when
 * out_size is too small or the id is longer than 256 bytes or has a NUL.
 */
size_t ngx_rustdesk_keys_sign_idpk(const ngx_rustdesk_keypair_t *kp,
    const u_char *id, size_t id_len, const u_char *pk, size_t pk_len,
    u_char *out, size_t out_size);


#endif /* _NGX_RUSTDESK_KEYS_H_INCLUDED_ */
