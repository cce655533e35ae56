/*
 * auth.c - who may see what: client keys ([auth]) and the stats token.
 *
 * DESIGN
 * With auth.required, the endpoints that serve session data need a client
 * key, presented as "Authorization: Bearer SECRET" (the scheme in any
 * case, RFC 9110 11.1), "X-Api-Key: SECRET" or
 * "?access_token=SECRET" (EventSource cannot set headers). Keys are kept
 * only as SHA-256 digests (config.c), so a presented secret is hashed and
 * compared with every key's digest by CRYPTO_memcmp(): digests have one
 * length and every key is compared, so the time taken tells nothing about
 * which key, or how much of one, matched. Each key names the sessions it
 * may see (config_key_allows()); a refusal is counted and logged without
 * the secret. server.stats_token protects the stats and the metrics the
 * same way.
 *
 * WAHA's own paths (compat_waha.c) have WAHA's doors: without
 * auth.required, upstream.api_key is the key a client must present, as
 * WAHA's clients do (X-Api-Key); it is hashed like a client key and the
 * digests compared with CRYPTO_memcmp(), so the time taken tells nothing
 * of how much of it matched.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "handlers.h"
#include "log.h"

/*
 * The credentials of AUTHORIZATION when its scheme is Bearer, or NULL. The
 * scheme is compared in any case (RFC 9110, 11.1) and followed by one or
 * more spaces (11.4); request.c has taken the blanks at the end away.
 */
static const char *bearer_token(const char *authorization)
{
    const char *token;

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    for (token = authorization + 7; *token == ' ';)
        token++;
    return token;
}

/* The key REQ presents (Bearer, X-Api-Key or ?access_token=), or NULL. */
const struct auth_key *auth_key_of(const struct http_request_view *req, bool *presented)
{
    char token[256];
    const char *secret = bearer_token(req->header[HEADER_AUTHORIZATION]);
    unsigned char digest[32];
    const struct auth_key *found = NULL;

    if (secret == NULL && req->header[HEADER_X_API_KEY] != NULL)
        secret = req->header[HEADER_X_API_KEY];
    else if (secret == NULL &&
             http_query_param(req->query, "access_token", token, sizeof(token)) == 0)
        secret = token;
    *presented = secret != NULL && secret[0] != '\0';
    if (!*presented)
        return NULL;
    EVP_Digest(secret, strlen(secret), digest, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < rt.cfg->auth.key_count; i++)
        if (CRYPTO_memcmp(digest, rt.cfg->auth.keys[i].secret_sha256, sizeof(digest)) ==
            0)
            found = &rt.cfg->auth.keys[i];
    return found;
}

bool auth_client(const struct http_request_view *req, struct http_response *resp)
{
    bool presented;

    rt.key = NULL;
    if (!rt.cfg->auth.required)
        return true;
    rt.key = auth_key_of(req, &presented);
    if (rt.key != NULL)
        return true;
    auth_refused(req, presented);
    http_response_error(resp, 401, "unauthorized",
                        "this resource needs a client key: Authorization: Bearer <key>, "
                        "X-Api-Key: <key> or ?access_token=<key>");
    http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"wahagate\"");
    return false;
}

void auth_refused(const struct http_request_view *req, bool presented)
{
    if (req->parked)
        return; /* counted at its first look */
    /* One line per kind, so that repeats collapse in the log. */
    route_count(COUNTER_AUTH_FAILURES);
    log_warn(0, "refused a request without a valid client key (%s)",
             presented ? "unknown key" : "no key");
}

bool auth_upstream_key(const struct http_request_view *req, bool *presented)
{
    const char *secret = req->header[HEADER_X_API_KEY];
    const char *key = rt.cfg->upstream.api_key;
    unsigned char got[32], want[32];
    char token[256];

    if (secret == NULL && http_query_param(req->query, "x-api-key", token, sizeof(token)) == 0)
        secret = token;
    *presented = secret != NULL && secret[0] != '\0';
    if (!*presented)
        return false;
    EVP_Digest(secret, strlen(secret), got, NULL, EVP_sha256(), NULL);
    EVP_Digest(key, strlen(key), want, NULL, EVP_sha256(), NULL);
    return CRYPTO_memcmp(got, want, sizeof(got)) == 0;
}

bool auth_allows(const char *session)
{
    return config_key_allows(rt.key, session);
}

bool auth_stats_token(const struct http_request_view *req, struct http_response *resp)
{
    const char *presented = bearer_token(req->header[HEADER_AUTHORIZATION]);
    unsigned char got[32];

    if (rt.cfg->server.stats_token[0] == '\0')
        return true;
    if (presented != NULL) {
        EVP_Digest(presented, strlen(presented), got, NULL, EVP_sha256(), NULL);
        if (CRYPTO_memcmp(got, rt.cfg->server.stats_token_sha256, sizeof(got)) == 0)
            return true;
    }
    http_response_error(resp, 401, "unauthorized",
                        "this resource needs Authorization: Bearer <server.stats_token>");
    http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"wahagate\"");
    return false;
}
