/*
 * assets.h - the static files served by wahagate (the dashboard at "/" and
 * the poller at "/poller.js"), embedded in the binary at build time from
 * server/assets/ by scripts/embed_assets.py, so the gateway needs no files
 * beside itself and the pages need nothing from outside.
 */
#ifndef WAHAGATE_ASSETS_H
#define WAHAGATE_ASSETS_H

#include <stddef.h>

struct asset {
    const char *path; /* "/" or "/poller.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* "<hash of data>" */
};

extern const struct asset assets[];
extern const int asset_count;

#endif
