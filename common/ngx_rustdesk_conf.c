/*
 * Stream-level configuration shared by the rendezvous and relay modules.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_conf.h"


ngx_rustdesk_stream_conf_t *
ngx_rustdesk_stream_conf(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_module_t                   *m;
    ngx_stream_conf_ctx_t          *ctx;
    ngx_rustdesk_stream_conf_t     *sc;
    ngx_rustdesk_main_conf_head_t  *head;

    /* set by ngx_stream_block() before any create_main_conf runs */

    ctx = (ngx_stream_conf_ctx_t *) cf->cycle->conf_ctx[ngx_stream_module.index];

    for (i = 0; cf->cycle->modules[i]; i++) {
        m = cf->cycle->modules[i];

        if (m->type != NGX_STREAM_MODULE
            || (ngx_strcmp(m->name, NGX_RUSTDESK_RENDEZVOUS_MODULE) != 0
                && ngx_strcmp(m->name, NGX_RUSTDESK_RELAY_MODULE) != 0))
        {
            continue;
        }

        head = ctx->main_conf[m->ctx_index];

        if (head != NULL && head->shared != NULL) {
            return head->shared;
        }
    }

    sc = ngx_pcalloc(cf->pool, sizeof(ngx_rustdesk_stream_conf_t));
    if (sc == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     sc->key_dir = { 0, NULL };
     *     sc->key = { 0, NULL };
     *     sc->keys = NULL;
     *     sc->key_dir_set = 0;
     *     sc->keys_from_dir = 0;
     *     sc->metrics = NULL;
     *     sc->channel.path = { 0, NULL };
     *     sc->channel.ready = 0;
     */

    /* the default directory depends on the pid file: decided at init */
    sc->channel.cycle = cf->cycle;

    ngx_rustdesk_cluster_create_conf(&sc->cluster);

    return sc;
}


char *
ngx_rustdesk_conf_set_key_dir(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rustdesk_stream_conf_t  *sc = ((ngx_rustdesk_main_conf_head_t *)
                                       conf)->shared;

    ngx_str_t  *value;

    if (sc->key_dir_set) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty key directory");
        return NGX_CONF_ERROR;
    }

    sc->key_dir = value[1];

    if (ngx_conf_full_name(cf->cycle, &sc->key_dir, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    sc->key_dir_set = 1;

    return NGX_CONF_OK;
}


char *
ngx_rustdesk_conf_set_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rustdesk_stream_conf_t  *sc = ((ngx_rustdesk_main_conf_head_t *)
                                       conf)->shared;

    ngx_str_t  *value;

    if (sc->key.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    sc->key = value[1];

    return NGX_CONF_OK;
}


ngx_int_t
ngx_rustdesk_conf_load_keys(ngx_conf_t *cf, ngx_rustdesk_stream_conf_t *sc)
{
    u_char                   *dir;
    unsigned                  what;
    ngx_rustdesk_keypair_t   *kp;
    char                      err[NGX_MAX_ERROR_STR];

    if (sc->keys != NULL) {
        return NGX_OK;
    }

    if (sc->key_dir.data == NULL) {
        ngx_str_set(&sc->key_dir, NGX_RUSTDESK_DEFAULT_KEY_DIR);
    }

    dir = ngx_pnalloc(cf->pool, sc->key_dir.len + 1);
    if (dir == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(dir, sc->key_dir.data, sc->key_dir.len + 1);

    /* never freed back to the pool: the secret lives as long as the cycle */

    kp = ngx_pcalloc(cf->pool, sizeof(ngx_rustdesk_keypair_t));
    if (kp == NULL) {
        return NGX_ERROR;
    }

    if (ngx_rustdesk_keys_load_or_generate((char *) dir, kp, &what,
                                           err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "rustdesk: %s", err);
        return NGX_ERROR;
    }

    if (what & NGX_RUSTDESK_KEYS_GENERATED) {
        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "rustdesk: generated key pair in \"%s\", "
                      "public key %s", dir, kp->pk_b64);
    }

    if (what & NGX_RUSTDESK_KEYS_PUB_WRITTEN) {
        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "rustdesk: wrote missing \"%s/%s\"",
                      dir, NGX_RUSTDESK_PK_FILE);
    }

    if (what & NGX_RUSTDESK_KEYS_PUB_MISMATCH) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "rustdesk: \"%s/%s\" does not match the private "
                      "key; clients must use %s", dir,
                      NGX_RUSTDESK_PK_FILE, kp->pk_b64);
    }

    if (what & NGX_RUSTDESK_KEYS_SK_OPEN_MODE) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "rustdesk: \"%s/%s\" is readable by group or "
                      "others, consider mode 0600", dir,
                      NGX_RUSTDESK_SK_FILE);
    }

    sc->keys = kp;
    sc->keys_from_dir = 1;

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_conf_resolve_key(ngx_conf_t *cf, ngx_rustdesk_stream_conf_t *sc,
    ngx_rustdesk_key_role_e role, ngx_str_t *licence)
{
    ngx_str_t                key;
    ngx_rustdesk_keypair_t  *kp;

    if (sc->key.data != NULL) {
        key = sc->key;

    } else if (role == NGX_RUSTDESK_KEY_HBBS) {
        ngx_str_set(&key, "-");

    } else {
        ngx_str_set(&key, "");
    }

    /* a base64 secret key: sign with it, clients present its public half */

    if (key.len) {
        kp = ngx_pcalloc(cf->pool, sizeof(ngx_rustdesk_keypair_t));
        if (kp == NULL) {
            return NGX_ERROR;
        }

        if (ngx_rustdesk_keys_from_secret_b64(key.data, key.len, kp) == 0) {
            if (sc->keys == NULL) {
                sc->keys = kp;
            }

            licence->data = (u_char *) kp->pk_b64;
            licence->len = NGX_RUSTDESK_PK_B64_LEN;
            return NGX_OK;
        }
    }

    if (key.len == 1 && (key.data[0] == '-' || key.data[0] == '_')) {
        if (ngx_rustdesk_conf_load_keys(cf, sc) != NGX_OK) {
            return NGX_ERROR;
        }

        licence->data = (u_char *) sc->keys->pk_b64;
        licence->len = NGX_RUSTDESK_PK_B64_LEN;
        return NGX_OK;
    }

    /*
     * empty: hbbs still signs peer keys with the pair, clients may present
     * anything; any other string is the key clients must present
     */

    if (key.len == 0 && role == NGX_RUSTDESK_KEY_HBBS) {
        if (ngx_rustdesk_conf_load_keys(cf, sc) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    *licence = key;

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_conf_zone_size(ngx_conf_t *cf, ngx_str_t *value, ngx_str_t *name,
    ssize_t *size)
{
    u_char     *p;
    ngx_str_t   s;

    p = (u_char *) ngx_strlchr(value->data, value->data + value->len, ':');

    if (p == NULL || p == value->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected name:size", value);
        return NGX_ERROR;
    }

    name->data = value->data;
    name->len = p - value->data;

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    *size = ngx_parse_size(&s);

    if (*size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", value);
        return NGX_ERROR;
    }

    if (*size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", value);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_shm_zone_t *
ngx_rustdesk_conf_add_zone(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    void *tag, ngx_shm_zone_init_pt init, size_t data_size)
{
    void            *data;
    ngx_shm_zone_t  *shm_zone;

    data = ngx_pcalloc(cf->pool, data_size);
    if (data == NULL) {
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size, tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", name);
        return NULL;
    }

    shm_zone->init = init;
    shm_zone->data = data;

    return shm_zone;
}


/*
 * rustdesk_real_ip_from address | CIDR; (repeatable): a WebSocket
 * connection from there may name its client in X-Real-IP or
 * X-Forwarded-For, as a reverse proxy does; from anywhere else those
 * headers change nothing.
 */

char *
ngx_rustdesk_conf_set_real_ip_from(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_rustdesk_main_conf_head_t  *head = conf;

    ngx_int_t                    rc;
    ngx_str_t                   *value;
    ngx_cidr_t                  *cidr;
    ngx_rustdesk_stream_conf_t  *sc;

    sc = head->shared;
    value = cf->args->elts;

    if (sc->real_ip_from == NULL) {
        sc->real_ip_from = ngx_array_create(cf->pool, 2, sizeof(ngx_cidr_t));
        if (sc->real_ip_from == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cidr = ngx_array_push(sc->real_ip_from);
    if (cidr == NULL) {
        return NGX_CONF_ERROR;
    }

    rc = ngx_ptocidr(&value[1], cidr);

    if (rc == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid address \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rc == NGX_DONE) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "low address bits of %V are meaningless",
                           &value[1]);
    }

    return NGX_CONF_OK;
}


/*
 * rustdesk_real_ip_header X-Real-IP | X-Forwarded-For: the one header a
 * trusted proxy names the client in (X-Forwarded-For: its last address,
 * the one the proxy added), as nginx's real_ip_header.
 */

char *
ngx_rustdesk_conf_set_real_ip_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_rustdesk_main_conf_head_t  *head = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[1].len == 9
        && ngx_strncasecmp(value[1].data, (u_char *) "X-Real-IP", 9) == 0)
    {
        head->shared->real_ip_header = NGX_RUSTDESK_REAL_IP_HEADER;
        return NGX_CONF_OK;
    }

    if (value[1].len == 15
        && ngx_strncasecmp(value[1].data, (u_char *) "X-Forwarded-For", 15)
           == 0)
    {
        head->shared->real_ip_header = NGX_RUSTDESK_REAL_IP_FORWARDED;
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid header \"%V\", expected X-Real-IP or "
                       "X-Forwarded-For", &value[1]);

    return NGX_CONF_ERROR;
}


/*
 * rustdesk_channel_dir path: where the workers' channel names live (see
 * ngx_rustdesk_ipc_dir_init()); relative to the prefix.
 */

char *
ngx_rustdesk_conf_set_channel_dir(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_rustdesk_stream_conf_t  *sc = ((ngx_rustdesk_main_conf_head_t *)
                                       conf)->shared;

    u_char     *p;
    ngx_str_t  *value, path;

    if (sc->channel.path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    /* "dir/" is "dir": its parent is checked too */

    while (path.len > 1 && path.data[path.len - 1] == '/') {
        path.len--;
    }

    if (path.len == 0 || (path.len == 1 && path.data[0] == '/')) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid channel directory \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* NUL-terminated, whether ngx_conf_full_name() copies it or not */

    p = ngx_pnalloc(cf->pool, path.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(p, path.data, path.len + 1);
    path.data = p;

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    sc->channel.path = path;

    return NGX_CONF_OK;
}
