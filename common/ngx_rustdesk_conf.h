/*
 * Configuration that both modules share: the key pair, the server key
 * that clients present, the trusted proxies, the worker channel's
 * directory and the cluster's Redis.  Each module's stream main conf starts with a
 * pointer to one ngx_rustdesk_stream_conf_t, whichever module is loaded
 * first creates it, and a directive that both modules declare is handled
 * by the first one nginx finds, so it lands in the same place either way.
 */

#ifndef _NGX_RUSTDESK_CONF_H_INCLUDED_
#define _NGX_RUSTDESK_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_keys.h"
#include "ngx_rustdesk_ipc.h"
#include "ngx_rustdesk_cluster.h"


#define NGX_RUSTDESK_RENDEZVOUS_MODULE  "ngx_stream_rustdesk_rendezvous_module"
#define NGX_RUSTDESK_RELAY_MODULE       "ngx_stream_rustdesk_relay_module"
#define NGX_RUSTDESK_DEFAULT_KEY_DIR    "/var/lib/rustdesk"


#define NGX_RUSTDESK_REAL_IP_HEADER      0   /* X-Real-IP */
#define NGX_RUSTDESK_REAL_IP_FORWARDED   1   /* X-Forwarded-For, its last */


typedef struct ngx_rustdesk_metrics_conf_s  ngx_rustdesk_metrics_conf_t;


typedef struct {
    ngx_str_t                 key_dir;     /* rustdesk_key_dir */
    ngx_str_t                 key;         /* rustdesk_key, data NULL: unset */
    ngx_rustdesk_keypair_t   *keys;        /* NULL until a module needs it */
    ngx_uint_t                key_dir_set; /* 1: given in the configuration */
    ngx_uint_t                keys_from_dir; /* 1: keys are key_dir's files */
    ngx_array_t              *real_ip_from; /* of ngx_cidr_t: trusted
                                               WebSocket proxies */
    ngx_uint_t                real_ip_header; /* NGX_RUSTDESK_REAL_IP_* */
    ngx_rustdesk_metrics_conf_t  *metrics; /* NULL: no rustdesk_metrics */
    ngx_rustdesk_ipc_dir_t    channel;     /* rustdesk_channel_dir */
    ngx_rustdesk_cluster_conf_t  cluster;  /* rustdesk_cluster */
} ngx_rustdesk_stream_conf_t;


/* The first member of each module's stream main conf. */
typedef struct {
    ngx_rustdesk_stream_conf_t  *shared;
} ngx_rustdesk_main_conf_head_t;


typedef enum {
    NGX_RUSTDESK_KEY_HBBS = 0,   /* unset means "-": require the key */
    NGX_RUSTDESK_KEY_HBBR        /* unset means "": accept any key */
} ngx_rustdesk_key_role_e;


/* For create_main_conf: the shared conf, found or made. */
ngx_rustdesk_stream_conf_t *ngx_rustdesk_stream_conf(ngx_conf_t *cf);

char *ngx_rustdesk_conf_set_key_dir(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rustdesk_conf_set_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rustdesk_conf_set_real_ip_from(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rustdesk_conf_set_real_ip_header(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_rustdesk_conf_set_channel_dir(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * Resolves the server key for a role, as hbbs or hbbr would from their -k
 * option (PROTOCOL.md section 5): loads or generates the key files when
 * the role needs them and sets *licence to the key clients must present
 * (empty: any).  Called at configuration time, in the master.
 */
ngx_int_t ngx_rustdesk_conf_resolve_key(ngx_conf_t *cf,
    ngx_rustdesk_stream_conf_t *sc, ngx_rustdesk_key_role_e role,
    ngx_str_t *licence);

/*
 * A zone directive's "name:size", as limit_conn_zone takes it; the size at
 * least 8 pages.  Logs what is wrong.
 */
ngx_int_t ngx_rustdesk_conf_zone_size(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *name, ssize_t *size);

/*
 * A module's shared zone: added under the module's tag, with its init
 * handler and a data struct of data_size bytes (zeroed); a name another
 * zone has is refused.
 */
ngx_shm_zone_t *ngx_rustdesk_conf_add_zone(ngx_conf_t *cf, ngx_str_t *name,
    size_t size, void *tag, ngx_shm_zone_init_pt init, size_t data_size);

/* Loads or generates the key pair once for both modules. */
ngx_int_t ngx_rustdesk_conf_load_keys(ngx_conf_t *cf,
    ngx_rustdesk_stream_conf_t *sc);


#endif /* _NGX_RUSTDESK_CONF_H_INCLUDED_ */
