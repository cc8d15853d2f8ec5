/*
 * measure: runs one benchmark and reports its wall time, CPU time and peak
 * RSS (from wait4), with a time limit; a small stand-in for GNU time.
 *
 *   measure [-t SECONDS] [-p PRELOAD] [-o OUTFILE] [-e ERRFILE] -- PROGRAM ARGS...
 *
 * -p sets LD_PRELOAD for the program only ("" or none: no preload, even if
 * measure's own environment has one).  Prints one line:
 *   status=ok|exit:N|signal:NAME|timeout|noexec wall_s=... user_s=... sys_s=... maxrss_kb=...
 * and exits 0 unless measure itself was used wrongly (2).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec * 1e-6;
}

static void redirect(const char *path, int fd)
{
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f < 0 || dup2(f, fd) < 0)
        _exit(126);
}

int main(int argc, char **argv)
{
    double limit = 0;
    const char *preload = NULL, *out = NULL, *err = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+t:p:o:e:")) != -1) {
        switch (opt) {
        case 't': limit = atof(optarg); break;
        case 'p': preload = optarg; break;
        case 'o': out = optarg; break;
        case 'e': err = optarg; break;
        default: goto usage;
        }
    }
    if (optind >= argc)
        goto usage;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;           /* no SA_RESTART: wait4 returns EINTR */
    sigaction(SIGALRM, &sa, NULL);

    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        setpgid(0, 0);
        if (out != NULL)
            redirect(out, 1);
        if (err != NULL)
            redirect(err, 2);
        if (preload != NULL && preload[0] != '\0')
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[optind], argv + optind);
        _exit(127);
    }
    setpgid(pid, pid);
    if (limit > 0) {
        struct itimerval it = { { 0, 0 }, { (time_t)limit, (suseconds_t)((limit - (double)(time_t)limit) * 1e6) } };
        setitimer(ITIMER_REAL, &it, NULL);
    }

    int st = 0, killed = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    for (;;) {
        pid_t r = wait4(pid, &st, 0, &ru);
        if (r == pid)
            break;
        if (r < 0 && errno == EINTR) {
            if (timed_out && !killed) {
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                killed = 1;
            }
            continue;
        }
        perror("wait4");
        return 2;
    }
    double wall = now() - t0;
    kill(-pid, SIGKILL);                /* leftovers in the group, if any */

    char status[64];
    if (killed)
        snprintf(status, sizeof status, "timeout");
    else if (WIFSIGNALED(st))
        snprintf(status, sizeof status, "signal:%s", sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
    else if (WEXITSTATUS(st) == 127)
        snprintf(status, sizeof status, "noexec");
    else if (WEXITSTATUS(st) != 0)
        snprintf(status, sizeof status, "exit:%d", WEXITSTATUS(st));
    else
        snprintf(status, sizeof status, "ok");
    printf("status=%s wall_s=%.6f user_s=%.6f sys_s=%.6f maxrss_kb=%ld\n", status, wall,
           tv(ru.ru_utime), tv(ru.ru_stime), ru.ru_maxrss);
    return 0;

usage:
    fprintf(stderr, "usage: %s [-t SECONDS] [-p PRELOAD] [-o OUTFILE] [-e ERRFILE] -- PROGRAM ARGS...\n",
            argv[0]);
    return 2;
}
