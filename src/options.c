/*
 * Options: every GOMALLOC_* setting, parsed and validated from one table.
 *
 * Sources, applied in this order (a later one wins for the same option):
 *   1. the program's own string, `const char *gomalloc_conf = "stats:1";`
 *      (a weak reference: programs that do not define it are unaffected);
 *   2. the GOMALLOC_CONF variable, "name:value,name:value" (or name=value);
 *   3. the GOMALLOC_<NAME> variables, one per option.
 * A malformed value, an unknown GOMALLOC_ variable or an unknown name in a
 * config string gets one warning on stderr, naming the variable, the value
 * and what is accepted, and the option keeps its previous value.  An empty
 * variable counts as unset.
 *
 * Invariants: this code runs inside the first malloc, possibly before main
 * and before libc has set up environ, so it never allocates and never uses
 * stdio (warnings go through gm_snprintf and write(2)).  It parses strings
 * in place, as (pointer, length) pairs; only text values taken from a
 * config string are copied, into a fixed static pool.  Fields are written
 * as little-endian integers of the field's width (x86-64).
 *
 * Locking: options_init runs under the allocator's init lock (proc.c), once
 * per process: its flag is set with a release store after the fields are
 * written, so a later caller that sees it sees the fields.  gm_opt is written
 * only inside that call; the tiers read it after initialisation.
 *
 * Adding an option: a field in gm_options (options.h), its default below,
 * and one OPT() line in the table.
 */
#define _GNU_SOURCE /* O_CLOEXEC */
#include "options.h"

#include "gomalloc.h"
#include "mprof.h"
#include "os.h"

#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* A program may build its own configuration in (see gomalloc.h). */
extern const char *gomalloc_conf __attribute__((weak));

gm_options gm_opt = {
    .tiny = true,
    .stats_at_exit = false,
    .stats_fd = 2,
    .scavenge_delay_ns = 500ull * 1000000,
    .scavenge_tick_ns = 100ull * 1000000,
    .retain_bytes = (size_t)64 << 20,
    .grow_bytes = GM_CHUNK_SIZE,
    .thread_cache_bytes = (size_t)1 << 20,
    .profile_rate = SIZE_MAX,
    .background = true,
    .cgroup = true,
    .cgroup_root = "/sys/fs/cgroup",
    .thp = GM_THP_KERNEL, /* see arena.c: auto costs calloc-heavy programs RSS */
};

#define GM_STRINGIFY_(x) #x
#define GM_STRINGIFY(x) GM_STRINGIFY_(x)

#define ENV_PREFIX "GOMALLOC_"
#define ENV_PREFIX_LEN (sizeof ENV_PREFIX - 1)
#define CONF_NAME "CONF" /* GOMALLOC_CONF is not an option but a carrier */

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define NS_PER_MS 1000000ull
#define MS_PER_S 1000ull
/* Largest accepted values: sizes up to 1 PiB, delays up to a day. */
#define MAX_SIZE ((uint64_t)1 << 50)
#define MAX_DELAY_MS (24ull * 3600 * MS_PER_S)
/* Text options (paths): the longest value, and room for all of them. */
#define STRING_MAX 255
#define STRING_POOL 2048

/* ---- the table ---- */

typedef enum {
    OPT_BOOL,     /* 0/1, true/false, on/off, yes/no -> a bool field */
    OPT_SIZE,     /* bytes, with K/M/G/T suffixes -> a size_t field */
    OPT_SIZE_MIB, /* the same, a bare number meaning MiB (the *_MB names) */
    OPT_MS,       /* milliseconds, or with an ms/s suffix -> a uint64_t of ns */
    OPT_UINT,     /* a plain number -> an unsigned integer field of any width */
    OPT_CHOICE,   /* one of the row's named choices -> an int field */
    OPT_BOOL_OR,  /* a boolean (0 or 1), or one of the row's named choices -> an int field */
    OPT_STRING,   /* any text (a path) -> a const char * field */
} opt_kind;

/* A named value of an OPT_CHOICE option; a list ends with a NULL name. */
typedef struct {
    const char *name;
    int value;
} opt_choice;

typedef struct {
    const char *name; /* the config name; the variable is GOMALLOC_<NAME> */
    opt_kind kind;
    size_t offset;    /* of the field in gm_options */
    size_t width;     /* of that field, in bytes */
    const char *help; /* one line, for the verbose listing's readers */
    const opt_choice *choices; /* OPT_CHOICE and OPT_BOOL_OR only */
} opt_def;

#define OPT(kind, name, field, help)                                                     \
    { #name, kind, offsetof(gm_options, field), sizeof(((gm_options *)0)->field), help, NULL }
/* e.g. OPT_CHOICES(thp, thp, thp_choices, "...") with
 * static const opt_choice thp_choices[] = {{"never", 1}, ..., {NULL, 0}}; */
/* A boolean that also takes a few names: OPT_BOOL_OR_CHOICES(stats, ...). */
#define OPT_BOOL_OR_CHOICES(name, field, choices, help)                                  \
    { #name, OPT_BOOL_OR, offsetof(gm_options, field), sizeof(((gm_options *)0)->field),  \
      help, choices }
#define OPT_CHOICES(name, field, choices, help)                                          \
    { #name, OPT_CHOICE, offsetof(gm_options, field), sizeof(((gm_options *)0)->field),   \
      help, choices }

/* GOMALLOC_STATS: a boolean (the report), or json. */
static const opt_choice stats_choices[] = {{"json", GM_STATS_JSON}, {NULL, 0}};
static const opt_choice thp_choices[] = {
    {"auto", GM_THP_AUTO}, {"always", GM_THP_ALWAYS}, {"never", GM_THP_NEVER},
    {"kernel", GM_THP_KERNEL}, {NULL, 0},
};

static const opt_def opts[] = {
    OPT_BOOL_OR_CHOICES(stats, stats_mode, stats_choices,
                        "print the heap report on stderr at exit (json: the statistics as JSON)"),
    OPT(OPT_BOOL, tiny, tiny, "pack requests of 1-4 bytes into shared 16-byte blocks"),
    OPT(OPT_MS, scavenge_delay_ms, scavenge_delay_ns, "free pages idle this long go to the OS"),
    OPT(OPT_SIZE, retain, retain_bytes, "free memory kept resident regardless"),
    OPT(OPT_SIZE_MIB, retain_mb, retain_bytes, "retain, a bare number in MiB"),
    OPT(OPT_SIZE, memlimit, memlimit_bytes, "soft limit on the resident heap (0: none)"),
    OPT(OPT_SIZE_MIB, memlimit_mb, memlimit_bytes, "memlimit, a bare number in MiB"),
    OPT(OPT_BOOL, background, background, "run the scavenger in a background thread"),
    OPT(OPT_SIZE, thread_cache, thread_cache_bytes,
        "bytes of freed blocks a thread keeps per size class for reuse (at most 127 blocks)"),
    OPT(OPT_BOOL, memlimit_hard, memlimit_hard, "allocations beyond the memory limit fail"),
    OPT(OPT_BOOL, cgroup, cgroup, "take the default memory limit from the cgroup"),
    OPT(OPT_STRING, cgroup_root, cgroup_root, "where the cgroup file systems are mounted"),
    OPT_CHOICES(thp, thp, thp_choices, "huge pages for the heap"),
    OPT(OPT_BOOL, verbose, verbose, "print version, library path and options at start-up"),
    OPT(OPT_STRING, stats_file, stats_file, "file for the JSON statistics (%p: the pid)"),
    OPT(OPT_UINT, stats_pid, stats_pid, "only this process writes reports at exit (0: any)"),
    OPT(OPT_STRING, profile, profile, "write a heap profile (pprof) here at exit (%p: the pid)"),
    OPT(OPT_SIZE, profile_rate, profile_rate, "bytes allocated per profile sample (1: all, 0: off)"),
    OPT(OPT_STRING, profile_signal, profile_signal, "also write the profile on this signal"),
    OPT(OPT_BOOL, leaks, leaks, "print the call stacks still holding memory at exit"),
    OPT(OPT_STRING, heap_map, heap_map, "draw the heap as SVG here at exit (%p: the pid)"),
};
#define NOPTS (sizeof opts / sizeof opts[0])

/* Where each option's value came from, for the verbose listing. */
static const char *opt_source[NOPTS];

static const char *const accepted[] = {
    [OPT_BOOL] = "0/1, true/false, on/off or yes/no",
    [OPT_SIZE] = "a number of bytes, optionally with a K, M, G or T suffix",
    [OPT_SIZE_MIB] = "a number of MiB, or a size with a K, M, G or T suffix",
    [OPT_MS] = "a number of milliseconds, optionally with an ms or s suffix",
    [OPT_UINT] = "a number",
    [OPT_CHOICE] = "one of", /* followed by the names */
    [OPT_BOOL_OR] = "0/1, true/false, on/off or yes/no, or", /* followed by the names */
    [OPT_STRING] = "text of at most " GM_STRINGIFY(STRING_MAX) " bytes",
};

/* Text values from config strings are copied here (they are not
 * NUL-terminated in place); values from variables are used where they are. */
static char string_pool[STRING_POOL];
static size_t string_pool_used;

/* ---- small string helpers on (pointer, length) ---- */

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool eq_nocase(const char *a, size_t n, const char *b) {
    size_t i = 0;
    for (; i < n && b[i]; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return i == n && !b[i];
}

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static const opt_def *lookup(const char *name, size_t n) {
    for (size_t i = 0; i < NOPTS; i++)
        if (eq_nocase(name, n, opts[i].name))
            return &opts[i];
    return NULL;
}

/* Edit distance (capped inputs) between a typed name and an option's, for
 * "did you mean"; two rows on the stack, no allocation. */
#define SUGGEST_MAX_LEN 40
static size_t distance(const char *a, size_t n, const char *b) {
    size_t m = strlen(b);
    if (n > SUGGEST_MAX_LEN || m > SUGGEST_MAX_LEN)
        return SIZE_MAX;
    size_t prev[SUGGEST_MAX_LEN + 1], cur[SUGGEST_MAX_LEN + 1];
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t sub = prev[j - 1] + (lower(a[i - 1]) != lower(b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (m + 1) * sizeof prev[0]);
    }
    return prev[m];
}

/* ---- warnings ---- */

#define WARN_BUF 1024

static void warn_write(const char *buf, int n) {
    gm_write_all(2, buf, (size_t)n < WARN_BUF ? (size_t)n : WARN_BUF - 1);
}

/* Formats an option's current value, e.g. "on", "64M", "500". */
static void format_value(const opt_def *d, char *buf, size_t size) {
    uint64_t v = 0;
    memcpy(&v, (const char *)&gm_opt + d->offset, d->width); /* little-endian */
    switch (d->kind) {
    case OPT_BOOL:
        gm_snprintf(buf, size, "%s", v & 0xff ? "on" : "off");
        break;
    case OPT_SIZE:
    case OPT_SIZE_MIB: {
        static const char *const units[] = {"K", "M", "G", "T"};
        int u = -1;
        while (v && v % KIB == 0 && u < 3) {
            v /= KIB;
            u++;
        }
        if (u < 0)
            gm_snprintf(buf, size, "%llu", (unsigned long long)v);
        else
            gm_snprintf(buf, size, "%llu%s", (unsigned long long)v, units[u]);
        break;
    }
    case OPT_MS:
        gm_snprintf(buf, size, "%llu", (unsigned long long)(v / NS_PER_MS));
        break;
    case OPT_UINT:
        gm_snprintf(buf, size, "%llu", (unsigned long long)v);
        break;
    case OPT_CHOICE:
    case OPT_BOOL_OR: {
        int iv;
        memcpy(&iv, (const char *)&gm_opt + d->offset, sizeof iv);
        const char *name = d->kind == OPT_BOOL_OR && iv <= 1 ? (iv ? "on" : "off") : "?";
        for (const opt_choice *c = d->choices; c->name; c++)
            if (c->value == iv)
                name = c->name;
        gm_snprintf(buf, size, "%s", name);
        break;
    }
    case OPT_STRING: {
        const char *str;
        memcpy(&str, (const char *)&gm_opt + d->offset, sizeof str);
        gm_snprintf(buf, size, "%s", str ? str : "(none)");
        break;
    }
    }
}

/* Copies s[0..n) into dst as a string, cut to fit (gm_snprintf has no %.*s). */
static const char *span(char *dst, size_t size, const char *s, size_t n) {
    if (n >= size)
        n = size - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
    return dst;
}

/* An option's name as the user wrote it: "memlimit" or "GOMALLOC_MEMLIMIT". */
static const char *display_name(char *dst, size_t size, const char *name, bool as_variable) {
    size_t k = 0;
    if (as_variable)
        k = (size_t)gm_snprintf(dst, size, "%s", ENV_PREFIX);
    for (; *name && k + 1 < size; name++)
        dst[k++] = as_variable && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
    dst[k] = 0;
    return dst;
}

/* where: "GOMALLOC_TINY=" or "GOMALLOC_CONF: " or "gomalloc_conf: ";
 * entry: what was given there ("maybe", or "tiny:maybe" in a string). */
static void warn_value(const char *where, const char *entry, size_t n, const opt_def *d) {
    char cur[64], given[256], what[256], buf[WARN_BUF];
    format_value(d, cur, sizeof cur);
    size_t used = (size_t)gm_snprintf(what, sizeof what, "%s", accepted[d->kind]);
    for (const opt_choice *c = d->choices; c && c->name && used < sizeof what; c++)
        used += (size_t)gm_snprintf(what + used, sizeof what - used, "%s%s", c == d->choices ? " " : ", ",
                                    c->name);
    int len = gm_snprintf(buf, sizeof buf, "gomalloc: %s%s: invalid value for %s; accepted: %s; "
                          "keeping %s\n", where, span(given, sizeof given, entry, n), d->name,
                          what, cur);
    warn_write(buf, len);
}

/* where: as for warn_value; name: the unknown name; entry: all of it. */
static void warn_unknown(const char *where, const char *name, size_t n, const char *entry,
                         size_t entry_n, bool as_variable) {
    /* the closest known name, if it is close */
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < NOPTS; i++) {
        size_t d = distance(name, n, opts[i].name);
        if (d < best_d) {
            best_d = d;
            best = opts[i].name;
        }
    }
    char list[WARN_BUF / 2], one[64], given[256], hint[96] = "", buf[WARN_BUF];
    size_t used = 0;
    for (size_t i = 0; i < NOPTS && used < sizeof list; i++)
        used += (size_t)gm_snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                    display_name(one, sizeof one, opts[i].name, as_variable));
    if (best)
        gm_snprintf(hint, sizeof hint, " (did you mean %s?)",
                    display_name(one, sizeof one, best, as_variable));
    int len = gm_snprintf(buf, sizeof buf, "gomalloc: %s%s: unknown option, ignored%s; known: %s\n",
                          where, span(given, sizeof given, entry, entry_n), hint, list);
    warn_write(buf, len);
}

/* ---- values ---- */

/* Digits into *out, false on none, junk or overflow; *rest gets the suffix. */
static bool parse_number(const char *s, size_t n, uint64_t *out, const char **rest, size_t *rest_n) {
    uint64_t x = 0;
    size_t i = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0)
        return false;
    *out = x;
    *rest = s + i;
    *rest_n = n - i;
    return true;
}

static bool parse_bool(const char *s, size_t n, uint64_t *out) {
    static const char *const yes[] = {"1", "true", "on", "yes"};
    static const char *const no[] = {"0", "false", "off", "no"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (eq_nocase(s, n, yes[i])) {
            *out = 1;
            return true;
        }
        if (eq_nocase(s, n, no[i])) {
            *out = 0;
            return true;
        }
    }
    return false;
}

/* "64", "64K", "64k", "64KB", "64KiB", ..., in units of `unit` when bare. */
static bool parse_size(const char *s, size_t n, uint64_t unit, uint64_t *out) {
    uint64_t x;
    const char *u;
    size_t un;
    if (!parse_number(s, n, &x, &u, &un))
        return false;
    trim(&u, &un);
    uint64_t mult = unit;
    if (un) {
        const char *p = strchr("kmgt", lower(u[0]));
        if (!p || !*p)
            mult = eq_nocase(u, un, "b") ? 1 : 0;
        else if (un == 1 || eq_nocase(u + 1, un - 1, "b") || eq_nocase(u + 1, un - 1, "ib"))
            mult = KIB << (10 * (p - "kmgt"));
        else
            mult = 0;
        if (!mult)
            return false;
    }
    if (x > MAX_SIZE / mult)
        return false;
    *out = x * mult;
    return true;
}

static bool parse_ms(const char *s, size_t n, uint64_t *out_ns) {
    uint64_t x;
    const char *u;
    size_t un;
    if (!parse_number(s, n, &x, &u, &un))
        return false;
    trim(&u, &un);
    if (un == 0 || eq_nocase(u, un, "ms"))
        ;
    else if (eq_nocase(u, un, "s") && x <= MAX_DELAY_MS / MS_PER_S)
        x *= MS_PER_S;
    else
        return false;
    if (x > MAX_DELAY_MS)
        return false;
    *out_ns = x * NS_PER_MS;
    return true;
}

static bool parse_uint(const char *s, size_t n, size_t width, uint64_t *out) {
    const char *rest;
    size_t rest_n;
    if (!parse_number(s, n, out, &rest, &rest_n) || rest_n)
        return false;
    return width >= sizeof(uint64_t) || *out < ((uint64_t)1 << (8 * width));
}

static bool parse_choice(const opt_def *d, const char *s, size_t n, uint64_t *out) {
    for (const opt_choice *c = d->choices; c->name; c++) {
        if (eq_nocase(s, n, c->name)) {
            *out = (uint64_t)(unsigned)c->value;
            return true;
        }
    }
    return false;
}

/* A NUL-terminated copy, or the text itself when it already ends there. */
static bool parse_string(const char *s, size_t n, const char **out) {
    if (n > STRING_MAX)
        return false;
    if (s[n] == 0) {
        *out = s;
        return true;
    }
    if (string_pool_used + n + 1 > sizeof string_pool)
        return false;
    char *copy = string_pool + string_pool_used;
    memcpy(copy, s, n);
    copy[n] = 0;
    string_pool_used += n + 1;
    *out = copy;
    return true;
}

/* Parses and stores one value; false (nothing stored) if malformed. */
static bool set_option(const opt_def *d, const char *s, size_t n) {
    uint64_t v;
    trim(&s, &n);
    char *field = (char *)&gm_opt + d->offset;
    if (d->kind == OPT_STRING) {
        const char *str;
        if (!parse_string(s, n, &str))
            return false;
        memcpy(field, &str, sizeof str);
        return true;
    }
    bool ok = false;
    switch (d->kind) {
    case OPT_BOOL: ok = parse_bool(s, n, &v); break;
    case OPT_SIZE: ok = parse_size(s, n, 1, &v); break;
    case OPT_SIZE_MIB: ok = parse_size(s, n, MIB, &v); break;
    case OPT_MS: ok = parse_ms(s, n, &v); break;
    case OPT_UINT: ok = parse_uint(s, n, d->width, &v); break;
    case OPT_CHOICE: ok = parse_choice(d, s, n, &v); break;
    case OPT_BOOL_OR: ok = parse_bool(s, n, &v) || parse_choice(d, s, n, &v); break;
    case OPT_STRING: break;
    }
    if (!ok)
        return false;
    if (d->kind == OPT_BOOL) {
        bool b = v != 0;
        memcpy(field, &b, sizeof b);
    } else {
        memcpy(field, &v, d->width); /* little-endian: the low bytes */
    }
    return true;
}

static void set_from(const opt_def *d, const char *source) {
    /* aliases (retain and retain_mb) share a field: both record the source */
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].offset == d->offset)
            opt_source[i] = source;
}

/* ---- sources ---- */

/* "name:value,name=value, ..." from `where` (a variable's or symbol's name). */
static void apply_conf(const char *where, const char *conf) {
    const char *p = conf;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *entry = p;
        size_t entry_n = n;
        trim(&entry, &entry_n);
        p += n + (end != NULL);
        if (!entry_n)
            continue;
        size_t k = 0;
        while (k < entry_n && entry[k] != ':' && entry[k] != '=')
            k++;
        const char *name = entry;
        size_t name_n = k;
        trim(&name, &name_n);
        char prefix[48];
        gm_snprintf(prefix, sizeof prefix, "%s: ", where);
        if (k == entry_n) {
            char given[256], buf[WARN_BUF];
            int len = gm_snprintf(buf, sizeof buf, "gomalloc: %s'%s': expected name:value pairs "
                                  "separated by commas, e.g. \"stats:1,memlimit:2G\"; ignored\n",
                                  prefix, span(given, sizeof given, entry, entry_n));
            warn_write(buf, len);
            continue;
        }
        const opt_def *d = lookup(name, name_n);
        if (!d) {
            warn_unknown(prefix, name, name_n, entry, entry_n, false);
            continue;
        }
        if (set_option(d, entry + k + 1, entry_n - k - 1))
            set_from(d, where);
        else
            warn_value(prefix, entry, entry_n, d);
    }
}

static void apply_environ(void) {
    /* GOMALLOC_CONF first, so the single variables override it */
    for (char **e = environ; *e; e++)
        if (strncmp(*e, ENV_PREFIX CONF_NAME "=", ENV_PREFIX_LEN + sizeof CONF_NAME) == 0)
            apply_conf(ENV_PREFIX CONF_NAME, *e + ENV_PREFIX_LEN + sizeof CONF_NAME);
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        const char *name = *e + ENV_PREFIX_LEN;
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        size_t name_n = (size_t)(eq - name);
        const char *value = eq + 1;
        if (name_n == sizeof CONF_NAME - 1 && strncmp(name, CONF_NAME, name_n) == 0)
            continue;
        const opt_def *d = lookup(name, name_n);
        if (!d) {
            warn_unknown("", name, name_n, *e, strlen(*e), true);
            continue;
        }
        if (!*value)
            continue; /* empty: as if unset */
        if (set_option(d, value, strlen(value)))
            set_from(d, "environment");
        else {
            char where[ENV_PREFIX_LEN + SUGGEST_MAX_LEN + 2];
            span(where, sizeof where, *e, (size_t)(value - *e)); /* "GOMALLOC_TINY=" */
            warn_value(where, value, strlen(value), d);
        }
    }
}

/* ---- the verbose start-up report ---- */

struct path_search {
    uintptr_t self;
    char *out;
    size_t size;
    bool found;
};

/* One line of /proc/self/maps: "start-end perms offset dev inode   path". */
static bool path_line(const char *line, void *arg) {
    struct path_search *ps = arg;
    uintptr_t lo = 0, hi = 0;
    const char *p = line;
    for (; *p && *p != '-'; p++)
        lo = lo * 16 + (uintptr_t)(*p <= '9' ? *p - '0' : lower(*p) - 'a' + 10);
    for (p += *p == '-'; *p && *p != ' '; p++)
        hi = hi * 16 + (uintptr_t)(*p <= '9' ? *p - '0' : lower(*p) - 'a' + 10);
    const char *path = strchr(line, '/');
    if (ps->self >= lo && ps->self < hi && path) {
        gm_snprintf(ps->out, ps->size, "%s", path);
        ps->found = true;
    }
    return !ps->found;
}

/* The file our code was mapped from, found in /proc/self/maps (no dladdr:
 * that would tie the library to libdl on older glibc). */
static bool library_path(char *out, size_t size) {
    struct path_search ps = {(uintptr_t)&options_init, out, size, false};
    return os_each_map_line(path_line, &ps) && ps.found;
}

static void print_verbose(void) {
    char path[1024], buf[WARN_BUF];
    if (!library_path(path, sizeof path))
        gm_snprintf(path, sizeof path, "(unknown: /proc/self/maps unreadable)");
    int len = gm_snprintf(buf, sizeof buf, "gomalloc %s: active in pid %d, loaded from %s\n",
                          GOMALLOC_VERSION, (int)getpid(), path);
    warn_write(buf, len);
    for (size_t i = 0; i < NOPTS; i++) {
        bool alias = false; /* list a field once, under its first name */
        for (size_t j = 0; j < i; j++)
            alias |= opts[j].offset == opts[i].offset;
        if (alias)
            continue;
        char val[STRING_MAX + 1];
        format_value(&opts[i], val, sizeof val);
        len = gm_snprintf(buf, sizeof buf, "gomalloc:   %-18s %-8s %-14s %s\n", opts[i].name, val,
                          opt_source[i] ? opt_source[i] : "default", opts[i].help);
        warn_write(buf, len);
    }
}

const char *gm_version(void) { return GOMALLOC_VERSION; }

void options_init(void) {
    /* Once, since other threads may be reading gm_opt by now; but a call
     * made before libc has set up environ (the dynamic loader allocates that
     * early) does not count, and the next one reads the environment. */
    static int done;
    if (!environ || __atomic_load_n(&done, __ATOMIC_ACQUIRE))
        return;
    if (&gomalloc_conf && gomalloc_conf)
        apply_conf("gomalloc_conf", gomalloc_conf);
    apply_environ();
    gm_opt.stats_at_exit = gm_opt.stats_mode == GM_STATS_TEXT;
    if (gm_opt.stats_at_exit)
        gm_opt.stats_fd = os_dup_high(2);
    if (gm_opt.scavenge_delay_ns < gm_opt.scavenge_tick_ns)
        gm_opt.scavenge_tick_ns = gm_opt.scavenge_delay_ns ? gm_opt.scavenge_delay_ns : 1;
    obs_options_init(); /* profiling, JSON stats, heap map (mstats.c) */
    if (gm_opt.verbose)
        print_verbose();
    /* Only now: a later call must not return before the fields are set.
     * Callers serialise on the allocator's init lock (proc.c). */
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}
