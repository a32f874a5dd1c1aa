/*
 * crun_argp: how crun reads a command line, for oci's differential tests.
 *
 * crun parses its global options and then the create or run options with
 * glibc's argp_parse(ARGP_IN_ORDER); the option tables below are crun's
 * (src/crun.c, src/create.c, src/run.c: names, keys, whether a value is
 * required) and so are the checks crun makes while parsing (cgroup manager,
 * log level, preserve-fds, exactly one container id). Running glibc's own
 * argp over them gives the reading cfs-runtime's Go parser must equal.
 *
 * Protocol: stdin carries records (u32 word count, then per word u32 length
 * and bytes); for each, a child parses argv[1..] = the words and reports on
 * fd 3; stdout gets (i32 wait status, u32 length, report) per record. The
 * report is NUL-separated: "start" ID BUNDLE CONFIG (bundle "-unset-" when
 * not given), "line" COMMAND, or "exit" (help, usage or version printed).
 * The child's own output goes to /dev/null; an alarm stops --HANG.
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int report_fd = 3;

static void report(const char *a, const char *b, const char *c, const char *d)
{
  const char *w[] = { a, b, c, d };
  for (int i = 0; i < 4 && w[i]; i++)
    if (write(report_fd, w[i], strlen(w[i]) + 1) < 0)
      _exit(99);
}

static void done_exit(void)
{
  report("exit", NULL, NULL, NULL);
}

enum { G_DEBUG = 1000, G_CGROUP_MANAGER, G_SYSTEMD, G_LOG, G_LOG_FORMAT, G_LOG_LEVEL, G_ROOT, G_ROOTLESS };

static struct argp_option global_options[] = {
  { "debug", G_DEBUG, 0, 0, 0, 0 },
  { "cgroup-manager", G_CGROUP_MANAGER, "MANAGER", 0, 0, 0 },
  { "systemd-cgroup", G_SYSTEMD, 0, 0, 0, 0 },
  { "log", G_LOG, "FILE", 0, 0, 0 },
  { "log-format", G_LOG_FORMAT, "FORMAT", 0, 0, 0 },
  { "log-level", G_LOG_LEVEL, "LEVEL", 0, 0, 0 },
  { "root", G_ROOT, "DIR", 0, 0, 0 },
  { "rootless", G_ROOTLESS, "VALUE", 0, 0, 0 },
  { "version", 'v', 0, 0, 0, 0 },
  { 0, 'V', 0, OPTION_ALIAS, 0, 0 },
  { 0 },
};

static error_t parse_global(int key, char *arg, struct argp_state *state)
{
  (void) state;
  switch (key)
    {
    case G_CGROUP_MANAGER:
      if (strcmp(arg, "systemd") && strcmp(arg, "cgroupfs") && strcmp(arg, "disabled"))
        exit(1);
      return 0;
    case G_LOG_LEVEL:
      if (strcmp(arg, "error") && strcmp(arg, "warning") && strcmp(arg, "debug"))
        exit(1);
      return 0;
    case 'v':
    case 'V':
      exit(0);
    case ARGP_KEY_NO_ARGS:
      exit(1); /* please specify a command */
    case G_DEBUG:
    case G_SYSTEMD:
    case G_LOG:
    case G_LOG_FORMAT:
    case G_ROOT:
    case G_ROOTLESS:
      return 0;
    }
  return ARGP_ERR_UNKNOWN;
}

enum { C_CONSOLE_SOCKET = 1000, C_PID_FILE, C_NO_SUBREAPER, C_NO_NEW_KEYRING, C_PRESERVE_FDS, C_NO_PIVOT, C_KEEP };

static struct argp_option create_options[] = {
  { "bundle", 'b', "DIR", 0, 0, 0 },
  { "config", 'f', "FILE", 0, 0, 0 },
  { "console-socket", C_CONSOLE_SOCKET, "SOCK", 0, 0, 0 },
  { "preserve-fds", C_PRESERVE_FDS, "N", 0, 0, 0 },
  { "no-pivot", C_NO_PIVOT, 0, 0, 0, 0 },
  { "pid-file", C_PID_FILE, "FILE", 0, 0, 0 },
  { "no-subreaper", C_NO_SUBREAPER, 0, 0, 0, 0 },
  { "no-new-keyring", C_NO_NEW_KEYRING, 0, 0, 0, 0 },
  { 0 },
};

static struct argp_option run_options[] = {
  { "bundle", 'b', "DIR", 0, 0, 0 },
  { "config", 'f', "FILE", 0, 0, 0 },
  { "detach", 'd', 0, 0, 0, 0 },
  { "console-socket", C_CONSOLE_SOCKET, "SOCKET", 0, 0, 0 },
  { "preserve-fds", C_PRESERVE_FDS, "N", 0, 0, 0 },
  { "pid-file", C_PID_FILE, "FILE", 0, 0, 0 },
  { "keep", C_KEEP, 0, 0, 0, 0 },
  { "no-subreaper", C_NO_SUBREAPER, 0, 0, 0, 0 },
  { "no-new-keyring", C_NO_NEW_KEYRING, 0, 0, 0, 0 },
  { "no-pivot", C_NO_PIVOT, 0, 0, 0, 0 },
  { 0 },
};

static const char *bundle, *config_file = "config.json";

/* crun's parse_int_or_fail */
static void int_or_fail(const char *s)
{
  char *end = NULL;
  errno = 0;
  long long l = strtoll(s, &end, 10);
  if (errno != 0 || (end != NULL && *end != '\0') || l < INT_MIN || l > INT_MAX)
    exit(1);
}

static error_t parse_start(int key, char *arg, struct argp_state *state)
{
  (void) state;
  switch (key)
    {
    case 'b':
      bundle = arg;
      return 0;
    case 'f':
      config_file = arg;
      return 0;
    case C_PRESERVE_FDS:
      int_or_fail(arg);
      return 0;
    case 'd':
    case C_CONSOLE_SOCKET:
    case C_PID_FILE:
    case C_NO_SUBREAPER:
    case C_NO_NEW_KEYRING:
    case C_NO_PIVOT:
    case C_KEEP:
      return 0;
    case ARGP_KEY_NO_ARGS:
      exit(1); /* please specify a ID for the container */
    }
  return ARGP_ERR_UNKNOWN;
}

static const char *commands[] = { "create", "delete", "exec", "list", "kill", "ps", "run", "spec", "start", "state",
                                  "update", "pause", "resume", "features", "checkpoint", "restore", "mounts", NULL };

static void parse(int argc, char **argv)
{
  struct argp global = { global_options, parse_global, "COMMAND [OPTION...]", 0, 0, 0, 0 };
  int first = 0;
  argp_parse(&global, argc, argv, ARGP_IN_ORDER, &first, NULL);
  const char *cmd = argv[first];
  int known = 0;
  for (int i = 0; commands[i]; i++)
    known |= strcmp(commands[i], cmd) == 0;
  if (!known)
    exit(1); /* unknown command */
  if (strcmp(cmd, "create") && strcmp(cmd, "run"))
    {
      report("line", cmd, NULL, NULL);
      exit(0);
    }
  int cargc = argc - first;
  char **cargv = argv + first;
  struct argp start = { strcmp(cmd, "run") ? create_options : run_options, parse_start, "CONTAINER", 0, 0, 0, 0 };
  int cfirst = 0;
  argp_parse(&start, cargc, cargv, ARGP_IN_ORDER, &cfirst, NULL);
  if (cargc - cfirst != 1)
    exit(1); /* crun_assert_n_args (n, 1, 1) */
  if (bundle != NULL && bundle[0] == '\0')
    exit(1); /* realpath ("") fails */
  report("start", cargv[cfirst], bundle ? bundle : "-unset-", config_file);
  exit(0);
}

static int read_full(void *buf, size_t n)
{
  size_t got = 0;
  while (got < n)
    {
      ssize_t r = read(0, (char *) buf + got, n - got);
      if (r <= 0)
        return -1;
      got += r;
    }
  return 0;
}

int main(void)
{
  uint32_t count;
  while (read_full(&count, 4) == 0)
    {
      char **argv = calloc(count + 2, sizeof(char *));
      argv[0] = "crun";
      for (uint32_t i = 0; i < count; i++)
        {
          uint32_t len;
          if (read_full(&len, 4) < 0)
            return 2;
          argv[i + 1] = calloc(len + 1, 1);
          if (read_full(argv[i + 1], len) < 0)
            return 2;
        }
      int p[2];
      if (pipe(p) < 0)
        return 2;
      fflush(stdout);
      pid_t pid = fork();
      if (pid == 0)
        {
          int null = open("/dev/null", O_WRONLY);
          dup2(p[1], 3);
          dup2(null, 1);
          dup2(null, 2);
          alarm(1);
          atexit(done_exit);
          parse((int) count + 1, argv);
          _exit(98);
        }
      close(p[1]);
      char out[65536];
      size_t n = 0;
      ssize_t r;
      while ((r = read(p[0], out + n, sizeof out - n)) > 0)
        n += r;
      close(p[0]);
      int status;
      waitpid(pid, &status, 0);
      int32_t st = status;
      uint32_t len = n;
      fwrite(&st, 4, 1, stdout);
      fwrite(&len, 4, 1, stdout);
      fwrite(out, 1, n, stdout);
      fflush(stdout);
      for (uint32_t i = 0; i < count; i++)
        free(argv[i + 1]);
      free(argv);
    }
  return 0;
}
