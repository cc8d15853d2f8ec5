/*
 * compiler: the allocation shape of a compiler or interpreter front end.
 * A symbol table of interned identifiers lives for the whole run.  Each
 * module is parsed into a syntax tree of many small nodes while short-lived
 * temporaries come and go (token strings, child lists grown by realloc,
 * scratch buffers); the module is then type-checked (more temporaries and
 * some mid-lived diagnostics), evaluated, and torn down node by node.
 */
#include "common.h"

struct sym {
    struct sym *next;
    uint64_t hash;
    long long uses;
    size_t len;
    char name[];
};

struct node {
    int kind;               /* 0 literal, 1 identifier, 2.. operators */
    int nkids;
    struct node **kids;
    struct sym *sym;
    long long value;
};

struct ctx {
    rng_t r;
    struct sym **buckets;
    size_t nbuckets, nsyms;
    long long distinct, maxdepth, nodes;
};

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void table_grow(struct ctx *c)
{
    size_t nb = c->nbuckets ? c->nbuckets * 2 : 64;
    struct sym **b = calloc(nb, sizeof *b);
    if (b == NULL)
        bench_fail("calloc failed");
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct sym *s = c->buckets[i], *next;
        for (; s != NULL; s = next) {
            next = s->next;
            s->next = b[s->hash & (nb - 1)];
            b[s->hash & (nb - 1)] = s;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

static struct sym *intern(struct ctx *c, const char *name, size_t len)
{
    uint64_t h = hash_str(name, len);
    for (struct sym *s = c->buckets[h & (c->nbuckets - 1)]; s != NULL; s = s->next)
        if (s->hash == h && s->len == len && memcmp(s->name, name, len) == 0)
            return s;
    struct sym *s = xmalloc(sizeof *s + len + 1);
    s->hash = h;
    s->uses = 0;
    s->len = len;
    memcpy(s->name, name, len + 1);
    s->next = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = s;
    if (++c->nsyms > c->nbuckets)
        table_grow(c);
    return s;
}

/* A token as the lexer would produce it: a fresh heap string. */
static char *make_token(struct ctx *c, size_t *len)
{
    uint64_t id = rng_below(&c->r, (uint64_t)c->distinct);
    char *t = xmalloc(48);
    int n = snprintf(t, 48, "%.*s_%llx", (int)(1 + id % 24), "identifier_with_long_name",
                     (unsigned long long)id);
    *len = (size_t)n;
    return t;
}

static struct node *parse(struct ctx *c, int depth)
{
    struct node *n = xmalloc(sizeof *n);
    uint64_t k = rng_below(&c->r, 100);
    c->nodes++;
    n->nkids = 0;
    n->kids = NULL;
    n->sym = NULL;
    n->value = 0;
    if (depth >= c->maxdepth || k < 40) {
        if (k & 1) {
            size_t len;
            char *tok = make_token(c, &len);
            n->kind = 1;
            n->sym = intern(c, tok, len);
            free(tok);
        } else {
            n->kind = 0;
            n->value = (long long)rng_below(&c->r, 1000000);
        }
        return n;
    }
    /* an operator: a scratch buffer (say, the source span) lives while the
     * operands are parsed; the operand list grows one entry at a time */
    size_t span = (size_t)rng_range(&c->r, 16, 160);
    char *scratch = xmalloc(span);
    memset(scratch, (int)k, span);
    int want = 1 + (int)rng_below(&c->r, 4);
    int cap = 0;
    n->kind = 2 + (int)(k % 7);
    for (int i = 0; i < want; i++) {
        if (n->nkids == cap) {
            cap = cap ? cap * 2 : 1;
            struct node **kids = realloc(n->kids, (size_t)cap * sizeof *kids);
            if (kids == NULL)
                bench_fail("realloc failed");
            n->kids = kids;
        }
        n->kids[n->nkids++] = parse(c, depth + 1);
    }
    if (scratch[span - 1] != (char)k)
        bench_fail("scratch buffer damaged");
    free(scratch);
    return n;
}

struct diag { struct diag *next; char text[]; };

/* Type check: per-operator temporary arrays, and a diagnostic now and then
 * that lives until the end of the pass. */
static int check(struct ctx *c, struct node *n, struct diag **diags, long long *count)
{
    if (n->kind == 0)
        return 1;
    if (n->kind == 1) {
        n->sym->uses++;
        return 1 + (int)(n->sym->hash & 3);
    }
    int *types = xmalloc(sizeof(int) * (size_t)n->nkids);
    int t = 0;
    for (int i = 0; i < n->nkids; i++)
        types[i] = check(c, n->kids[i], diags, count);
    for (int i = 0; i < n->nkids; i++)
        t = t * 3 + types[i];
    free(types);
    if (++*count % 50 == 0) {
        size_t len = (size_t)rng_range(&c->r, 24, 200);
        struct diag *d = xmalloc(sizeof *d + len);
        memset(d->text, 'w', len - 1);
        d->text[len - 1] = '\0';
        d->next = *diags;
        *diags = d;
    }
    return t % 5;
}

static uint64_t eval(const struct node *n)
{
    uint64_t h = mix64((uint64_t)n->kind * 31 + (uint64_t)n->value);
    if (n->sym != NULL)
        h ^= n->sym->hash;
    for (int i = 0; i < n->nkids; i++)
        h = mix64(h + eval(n->kids[i]));
    return h;
}

static void destroy(struct node *n)
{
    for (int i = 0; i < n->nkids; i++)
        destroy(n->kids[i]);
    free(n->kids);
    free(n);
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "nodes", 200000, "syntax tree nodes per module (at least)" },
        { "modules", 10, "modules parsed, checked and torn down" },
        { "syms", 20000, "distinct identifiers" },
        { "depth", 10, "maximum expression depth" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv,
               "compiler: long-lived symbol table and trees, short-lived temporaries", o);
    if (o[0].value < 1 || o[1].value < 1 || o[2].value < 1 || o[3].value < 1)
        bench_fail("bad parameters");

    struct ctx c = { .r = rng_seed((uint64_t)o[4].value, 0), .distinct = o[2].value,
                     .maxdepth = o[3].value };
    table_grow(&c);
    uint64_t sum = 0;
    for (long long m = 0; m < o[1].value; m++) {
        struct node **stmts = NULL;
        size_t nstmts = 0, cap = 0;
        c.nodes = 0;
        while (c.nodes < o[0].value) {
            if (nstmts == cap) {
                cap = cap ? cap * 2 : 16;
                struct node **s = realloc(stmts, cap * sizeof *s);
                if (s == NULL)
                    bench_fail("realloc failed");
                stmts = s;
            }
            stmts[nstmts++] = parse(&c, 0);
        }
        struct diag *diags = NULL;
        long long count = 0;
        for (size_t i = 0; i < nstmts; i++)
            sum = mix64(sum + (uint64_t)check(&c, stmts[i], &diags, &count));
        for (size_t i = 0; i < nstmts; i++)
            sum = mix64(sum + eval(stmts[i]));
        while (diags != NULL) {
            struct diag *next = diags->next;
            sum += strlen(diags->text);
            free(diags);
            diags = next;
        }
        for (size_t i = 0; i < nstmts; i++)
            destroy(stmts[i]);
        free(stmts);
        sum = mix64(sum + (uint64_t)c.nodes);
    }
    for (size_t i = 0; i < c.nbuckets; i++) {
        struct sym *s = c.buckets[i], *next;
        for (; s != NULL; s = next) {
            next = s->next;
            sum += mix64(s->hash + (uint64_t)s->uses);
            free(s);
        }
    }
    free(c.buckets);
    bench_metric("symbols", (long long)c.nsyms);
    bench_ok(sum);
    return 0;
}
