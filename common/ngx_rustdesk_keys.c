/*
 * Server key pair files and the signed peer key (PROTOCOL.md section 5).
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ngx_rustdesk_keys.h"
#include "rendezvous.pb-c.h"


#define NGX_RUSTDESK_KEY_FILE_MAX  1024
#define NGX_RUSTDESK_ID_MAX        256


static int ngx_rustdesk_keys_read_file(const char *path, char *buf,
    size_t size, size_t *len);
static int ngx_rustdesk_keys_write_file(const char *dir, const char *path,
    const char *data, size_t len, mode_t mode, char *err, size_t err_size);
static void ngx_rustdesk_keys_trim(const char **s, size_t *len);


int
ngx_rustdesk_keys_from_secret_b64(const u_char *b64, size_t len,
    ngx_rustdesk_keypair_t *kp)
{
    int           rc;
    size_t        n;
    const char   *end, *s;
    u_char        pk[crypto_sign_PUBLICKEYBYTES];
    u_char        sk[crypto_sign_SECRETKEYBYTES];
    u_char        given[crypto_sign_SECRETKEYBYTES];

    if (sodium_init() < 0) {
        return -1;
    }

    s = (const char *) b64;
    ngx_rustdesk_keys_trim(&s, &len);

    if (sodium_base642bin(given, sizeof(given), s, len, NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL)
        != 0
        || end != s + len
        || n != crypto_sign_SECRETKEYBYTES)
    {
        sodium_memzero(given, sizeof(given));
        return -1;
    }

    /* libsodium's layout is seed || public key: both halves must agree */

    crypto_sign_seed_keypair(pk, sk, given);
    sodium_memzero(sk, sizeof(sk));

    rc = memcmp(pk, given + crypto_sign_SEEDBYTES, sizeof(pk));

    if (rc == 0) {
        memcpy(kp->sk, given, sizeof(given));
    }

    sodium_memzero(given, sizeof(given));

    if (rc != 0) {
        return -1;
    }

    memcpy(kp->pk, pk, sizeof(pk));
    sodium_bin2base64(kp->pk_b64, sizeof(kp->pk_b64), kp->pk, sizeof(kp->pk),
                      sodium_base64_VARIANT_ORIGINAL);

    return 0;
}


void
ngx_rustdesk_keys_generate(ngx_rustdesk_keypair_t *kp)
{
    int  i;

    for (i = 0; i <= NGX_RUSTDESK_GEN_TRIES; i++) {
        crypto_sign_keypair(kp->pk, kp->sk);
        sodium_bin2base64(kp->pk_b64, sizeof(kp->pk_b64), kp->pk,
                          sizeof(kp->pk), sodium_base64_VARIANT_ORIGINAL);

        if (strpbrk(kp->pk_b64, "/:") == NULL) {
            return;
        }
    }
}


int
ngx_rustdesk_keys_load_or_generate(const char *dir,
    ngx_rustdesk_keypair_t *kp, unsigned *what, char *err, size_t err_size)
{
    char         sk_path[PATH_MAX], pk_path[PATH_MAX];
    char         buf[NGX_RUSTDESK_KEY_FILE_MAX];
    char         sk_b64[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES,
                                    sodium_base64_VARIANT_ORIGINAL)];
    size_t       len;
    const char  *s;
    struct stat  st;

    *what = 0;

    if (sodium_init() < 0) {
        snprintf(err, err_size, "libsodium failed to initialize");
        return -1;
    }

    if ((size_t) snprintf(sk_path, sizeof(sk_path), "%s/%s", dir,
                          NGX_RUSTDESK_SK_FILE) >= sizeof(sk_path)
        || (size_t) snprintf(pk_path, sizeof(pk_path), "%s/%s", dir,
                             NGX_RUSTDESK_PK_FILE) >= sizeof(pk_path))
    {
        snprintf(err, err_size, "key directory path \"%s\" is too long", dir);
        return -1;
    }

    if (ngx_rustdesk_keys_read_file(sk_path, buf, sizeof(buf), &len) == 0) {

        if (ngx_rustdesk_keys_from_secret_b64((u_char *) buf, len, kp) != 0) {
            snprintf(err, err_size, "malformed private key in \"%s\": "
                     "expected the base64 of a 64-byte Ed25519 secret key",
                     sk_path);
            sodium_memzero(buf, sizeof(buf));
            return -1;
        }

        sodium_memzero(buf, sizeof(buf));

        if (stat(sk_path, &st) == 0 && (st.st_mode & 077)) {
            *what |= NGX_RUSTDESK_KEYS_SK_OPEN_MODE;
        }

        /* the public key file is informational: rewrite it if missing */

        if (ngx_rustdesk_keys_read_file(pk_path, buf, sizeof(buf), &len)
            == 0)
        {
            s = buf;
            ngx_rustdesk_keys_trim(&s, &len);

            if (len != NGX_RUSTDESK_PK_B64_LEN
                || memcmp(s, kp->pk_b64, len) != 0)
            {
                *what |= NGX_RUSTDESK_KEYS_PUB_MISMATCH;
            }

        } else if (errno == ENOENT) {
            if (ngx_rustdesk_keys_write_file(dir, pk_path, kp->pk_b64,
                                             NGX_RUSTDESK_PK_B64_LEN, 0644,
                                             err, err_size)
                != 0)
            {
                return -1;
            }

            *what |= NGX_RUSTDESK_KEYS_PUB_WRITTEN;
        }

        return 0;
    }

    if (errno != ENOENT) {
        snprintf(err, err_size, "cannot read private key \"%s\": %s",
                 sk_path, errno == EFBIG ? "file too large" : strerror(errno));
        return -1;
    }

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create key directory \"%s\": %s",
                 dir, strerror(errno));
        return -1;
    }

    ngx_rustdesk_keys_generate(kp);

    sodium_bin2base64(sk_b64, sizeof(sk_b64), kp->sk, sizeof(kp->sk),
                      sodium_base64_VARIANT_ORIGINAL);

    /* the reference writes the public key first, then the secret key */

    if (ngx_rustdesk_keys_write_file(dir, pk_path, kp->pk_b64,
                                     NGX_RUSTDESK_PK_B64_LEN, 0644,
                                     err, err_size)
        != 0
        || ngx_rustdesk_keys_write_file(dir, sk_path, sk_b64, strlen(sk_b64),
                                        0600, err, err_size)
           != 0)
    {
        sodium_memzero(sk_b64, sizeof(sk_b64));
        return -1;
    }

    sodium_memzero(sk_b64, sizeof(sk_b64));

    *what |= NGX_RUSTDESK_KEYS_GENERATED;

    return 0;
}


size_t
ngx_rustdesk_keys_sign_idpk(const ngx_rustdesk_keypair_t *kp,
    const u_char *id, size_t id_len, const u_char *pk, size_t pk_len,
    u_char *out, size_t out_size)
{
    char       id_str[NGX_RUSTDESK_ID_MAX + 1];
    size_t     n;
    Hbb__IdPk  idpk = HBB__ID_PK__INIT;

    /* a protobuf string here is a C string: no NUL inside */

    if (id_len > NGX_RUSTDESK_ID_MAX || memchr(id, '\0', id_len) != NULL) {
        return 0;
    }

    memcpy(id_str, id, id_len);
    id_str[id_len] = '\0';

    idpk.id = id_str;
    idpk.pk.data = (uint8_t *) pk;
    idpk.pk.len = pk_len;

    n = hbb__id_pk__get_packed_size(&idpk);

    if (out_size < crypto_sign_BYTES + n) {
        return 0;
    }

    hbb__id_pk__pack(&idpk, out + crypto_sign_BYTES);

    /* combined form: signature || message */

    crypto_sign_detached(out, NULL, out + crypto_sign_BYTES, n, kp->sk);

    return crypto_sign_BYTES + n;
}


/* Reads a small file whole; -1 with errno set when it cannot. */

static int
ngx_rustdesk_keys_read_file(const char *path, char *buf, size_t size,
    size_t *len)
{
    int      fd, e;
    ssize_t  n;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    *len = 0;

    for ( ;; ) {
        n = read(fd, buf + *len, size - *len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            e = errno;
            close(fd);
            errno = e;
            return -1;
        }

        if (n == 0) {
            break;
        }

        *len += n;

        if (*len == size) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }

    close(fd);

    return 0;
}


/*
 * Writes through a temporary file and rename(), so that a reader never
 * sees a half-written key and an interrupted write leaves nothing behind.
 */

static int
ngx_rustdesk_keys_write_file(const char *dir, const char *path,
    const char *data, size_t len, mode_t mode, char *err, size_t err_size)
{
    int      fd;
    char     tmp[PATH_MAX];
    size_t   done;
    ssize_t  n;

    if ((size_t) snprintf(tmp, sizeof(tmp), "%s/.rustdesk-key-XXXXXX", dir)
        >= sizeof(tmp))
    {
        snprintf(err, err_size, "key directory path \"%s\" is too long", dir);
        return -1;
    }

    fd = mkstemp(tmp);
    if (fd == -1) {
        snprintf(err, err_size, "cannot create a file in \"%s\": %s",
                 dir, strerror(errno));
        return -1;
    }

    if (fchmod(fd, mode) != 0) {
        goto failed;
    }

    for (done = 0; done < len; done += n) {
        n = write(fd, data + done, len - done);

        if (n == -1) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }

            goto failed;
        }
    }

    if (fsync(fd) != 0) {
        goto failed;
    }

    if (close(fd) != 0) {
        fd = -1;
        goto failed;
    }

    fd = -1;

    if (rename(tmp, path) != 0) {
        goto failed;
    }

    return 0;

failed:

    snprintf(err, err_size, "cannot write \"%s\": %s", path, strerror(errno));

    if (fd != -1) {
        close(fd);
    }

    unlink(tmp);

    return -1;
}


static void
ngx_rustdesk_keys_trim(const char **s, size_t *len)
{
    while (*len && memchr(" \t\r\n", (*s)[0], 4) != NULL) {
        (*s)++;
        (*len)--;
    }

    while (*len && memchr(" \t\r\n", (*s)[*len - 1], 4) != NULL) {
        (*len)--;
    }
}
