/*
 * A blocking Redis client for the cluster benchmark, only to look into
 * the Redis the hosts share: one command per connection (RESP), the reply
 * as text, and what INFO says (calls per command, used memory, keys).
 *
 * Everything here talks to 127.0.0.1 only.
 */

#ifndef REDIS_H
#define REDIS_H

#include "bench.h"


#define REDIS_REPLY_MAX   (1024 * 1024)
#define REDIS_CMDS_MAX    64


/* INFO's figures: calls per command (cmdstat_<name>), memory, keys. */
typedef struct {
    unsigned              n;
    char                  name[REDIS_CMDS_MAX][48];
    unsigned long long    calls[REDIS_CMDS_MAX];
    unsigned long long    used_memory;
    unsigned long long    keys;
    double                cpu;          /* used_cpu_sys + used_cpu_user */
} redis_info_t;


static unsigned  redis_port;


/* Something to read within 5 s. */
static inline int
redis_wait(int fd)
{
    struct pollfd  pfd;

    pfd.fd = fd;
    pfd.events = POLLIN;

    return poll(&pfd, 1, 5000) == 1;
}


/* The next line of the reply in buf[*pos..len), without its CRLF. */
static inline char *
redis_line(int fd, char *buf, size_t *len, size_t *pos)
{
    char     *eol;
    ssize_t   n;

    for ( ;; ) {
        buf[*len] = '\0';
        eol = strstr(buf + *pos, "\r\n");

        if (eol) {
            char  *line = buf + *pos;

            *eol = '\0';
            *pos = eol + 2 - buf;
            return line;
        }

        if (*len >= REDIS_REPLY_MAX - 1 || !redis_wait(fd)) {
            return NULL;
        }

        n = recv(fd, buf + *len, REDIS_REPLY_MAX - 1 - *len, 0);

        if (n <= 0) {
            return NULL;
        }

        *len += n;
    }
}


/*
 * One reply at buf[*pos..) appended to out (of size REDIS_REPLY_MAX) as
 * text: a bulk string or status as it is, an integer in digits, an array
 * one element a line, nil as "(nil)".  -1 on an error reply or a failure.
 */
static inline int
redis_reply(int fd, char *buf, size_t *len, size_t *pos, char *out,
    size_t *olen)
{
    char     *line;
    long      n, i;
    ssize_t   got;

    line = redis_line(fd, buf, len, pos);

    if (line == NULL || line[0] == '-') {
        return -1;
    }

    n = atol(line + 1);

    switch (line[0]) {
    case '+':
    case ':':
        *olen += snprintf(out + *olen, REDIS_REPLY_MAX - *olen, "%s\n",
                          line + 1);
        return 0;

    case '$':
        if (n < 0) {
            *olen += snprintf(out + *olen, REDIS_REPLY_MAX - *olen,
                              "(nil)\n");
            return 0;
        }

        while (*len - *pos < (size_t) n + 2) {
            if (*len >= REDIS_REPLY_MAX - 1 || !redis_wait(fd)) {
                return -1;
            }

            got = recv(fd, buf + *len, REDIS_REPLY_MAX - 1 - *len, 0);

            if (got <= 0) {
                return -1;
            }

            *len += got;
        }

        if (*olen + n + 2 > REDIS_REPLY_MAX) {
            return -1;
        }

        memcpy(out + *olen, buf + *pos, n);
        *olen += n;
        out[(*olen)++] = '\n';
        out[*olen] = '\0';
        *pos += n + 2;
        return 0;

    case '*':
        for (i = 0; i < n; i++) {
            if (redis_reply(fd, buf, len, pos, out, olen) != 0) {
                return -1;
            }
        }

        return 0;
    }

    return -1;
}


/*
 * A command (argc words) and its reply as text in a static buffer (valid
 * until the next command); NULL on an error or a failure.
 */
static inline char *
redis_cmd(int argc, const char **argv)
{
    int                  fd, i;
    char                *req, *buf;
    size_t               rlen, len, pos, olen;
    static char         *out;
    struct sockaddr_in   to;

    if (out == NULL) {
        out = malloc(REDIS_REPLY_MAX);
        if (out == NULL) {
            die("malloc");
        }
    }

    to = loopback("127.0.0.1", redis_port);

    fd = tcp_to(NULL, &to);
    if (fd == -1) {
        return NULL;
    }

    req = malloc(4096);
    buf = malloc(REDIS_REPLY_MAX);

    if (req == NULL || buf == NULL) {
        die("malloc");
    }

    rlen = snprintf(req, 4096, "*%d\r\n", argc);

    for (i = 0; i < argc && rlen < 4000; i++) {
        rlen += snprintf(req + rlen, 4096 - rlen, "$%zu\r\n%s\r\n",
                         strlen(argv[i]), argv[i]);
    }

    len = pos = olen = 0;
    out[0] = '\0';

    if (send_full(fd, req, rlen) != 0
        || redis_reply(fd, buf, &len, &pos, out, &olen) != 0)
    {
        close(fd);
        free(req);
        free(buf);
        return NULL;
    }

    close(fd);
    free(req);
    free(buf);

    return out;
}


/* INFO commandstats, memory and keyspace: 0, or -1 said on stderr. */
static inline int
redis_info(redis_info_t *ri)
{
    char          *text, *line, *save, *p;
    const char    *argv[] = { "INFO", "all" };

    memset(ri, 0, sizeof(*ri));

    text = redis_cmd(2, argv);
    if (text == NULL) {
        fprintf(stderr, "bench: INFO of redis on port %u failed\n",
                redis_port);
        return -1;
    }

    for (line = strtok_r(text, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save))
    {
        if (strncmp(line, "cmdstat_", 8) == 0 && ri->n < REDIS_CMDS_MAX) {
            p = strchr(line, ':');

            if (p == NULL || strncmp(p + 1, "calls=", 6) != 0) {
                continue;
            }

            snprintf(ri->name[ri->n], sizeof(ri->name[0]), "%.*s",
                     (int) (p - line - 8), line + 8);
            ri->calls[ri->n] = strtoull(p + 7, NULL, 10);
            ri->n++;

        } else if (strncmp(line, "used_memory:", 12) == 0) {
            ri->used_memory = strtoull(line + 12, NULL, 10);

        } else if (strncmp(line, "used_cpu_sys:", 13) == 0) {
            ri->cpu += atof(line + 13);

        } else if (strncmp(line, "used_cpu_user:", 14) == 0) {
            ri->cpu += atof(line + 14);

        } else if (strncmp(line, "db0:keys=", 9) == 0) {
            ri->keys = strtoull(line + 9, NULL, 10);
        }
    }

    return 0;
}


/* The calls of command `name' (0 if never called). */
static inline unsigned long long
redis_calls(const redis_info_t *ri, const char *name)
{
    unsigned  i;

    for (i = 0; i < ri->n; i++) {
        if (strcmp(ri->name[i], name) == 0) {
            return ri->calls[i];
        }
    }

    return 0;
}


/*
 * The commands the hosts sent between two INFOs: all calls but INFO's own
 * (this client's), and "set 123, get 45, ..." into list (of size).
 */
static inline unsigned long long
redis_delta(const redis_info_t *a, const redis_info_t *b, char *list,
    size_t size)
{
    size_t               len;
    unsigned             i;
    unsigned long long   d, sum;

    sum = 0;
    len = 0;
    list[0] = '\0';

    for (i = 0; i < b->n; i++) {
        if (strcmp(b->name[i], "info") == 0) {
            continue;
        }

        d = b->calls[i] - redis_calls(a, b->name[i]);

        if (d == 0) {
            continue;
        }

        sum += d;

        if (len < size) {
            len += snprintf(list + len, size - len, "%s%s %llu",
                            len ? ", " : "", b->name[i], d);
        }
    }

    if (sum == 0) {
        snprintf(list, size, "none");
    }

    return sum;
}


/*
 * Waits until the hosts' commands stop coming (the calls but INFO's the
 * same 200 ms apart, at most 5 s), then reads INFO into ri.
 */
static inline int
redis_quiet(redis_info_t *ri)
{
    int                  i;
    char                 list[16];
    redis_info_t         prev;
    unsigned long long   d;

    if (redis_info(&prev) != 0) {
        return -1;
    }

    for (i = 0; i < 25; i++) {
        usleep(200000);

        if (redis_info(ri) != 0) {
            return -1;
        }

        d = redis_delta(&prev, ri, list, sizeof(list));

        if (d == 0) {
            return 0;
        }

        prev = *ri;
    }

    return 0;
}


/* Clients whose name starts with prefix (CLIENT LIST). */
static inline unsigned
redis_clients(const char *prefix)
{
    char          *text, *p;
    unsigned       n;
    char           pat[128];
    const char    *argv[] = { "CLIENT", "LIST" };

    text = redis_cmd(2, argv);
    if (text == NULL) {
        return 0;
    }

    snprintf(pat, sizeof(pat), " name=%s", prefix);

    n = 0;

    for (p = strstr(text, pat); p; p = strstr(p + 1, pat)) {
        n++;
    }

    return n;
}


#endif /* REDIS_H */
