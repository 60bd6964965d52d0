/*
 * host.c -- a disklib stand-in in C: loads a NAS plugin the way disklib does and checks what
 * the plugin does before any daemon is involved.
 *
 *   host layout        print "name value" for every size and offset of the interface
 *   host load SO DIR   dlopen SO, walk its entry point, Init, decline checks, Done;
 *                      DIR is a directory with no .openvaai/access (a foreign datastore)
 *   host e2e SO MOUNT IP EXPORT FILE
 *                      a session on a datastore served by openvaaid: SupportStatus, STATX
 *                      of MOUNT/FILE, lazy and full clones of it with progress, RESVSPACE,
 *                      EndSession; prints "key value" lines
 *
 * Exit status 0 when every check passed; each failed check is printed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "openvaai_nas_plugin.h"

/* The x86_64 LP64 layout of the interface, as disklib was compiled against it. */
_Static_assert(sizeof(Bool) == 1, "Bool is a char");
_Static_assert(sizeof(VixError) == 8, "VixError is 64 bits");
_Static_assert(sizeof(VixDiskLibNasPluginPrimitiveID) == 4, "enums are int");
_Static_assert(sizeof(VixDiskLibPlugin) == 40, "VixDiskLibPlugin");
_Static_assert(offsetof(VixDiskLibPlugin, type) == 8, "type");
_Static_assert(offsetof(VixDiskLibPlugin, name) == 16, "name");
_Static_assert(offsetof(VixDiskLibPlugin, Init) == 24, "Init");
_Static_assert(offsetof(VixDiskLibPlugin, Done) == 32, "Done");
_Static_assert(sizeof(VixDiskLibNasPlugin) == 72, "VixDiskLibNasPlugin");
_Static_assert(offsetof(VixDiskLibNasPlugin, StartSession) == 40, "StartSession");
_Static_assert(offsetof(VixDiskLibNasPlugin, EndSession) == 48, "EndSession");
_Static_assert(offsetof(VixDiskLibNasPlugin, ExecPrimitive) == 56, "ExecPrimitive");
_Static_assert(offsetof(VixDiskLibNasPlugin, SupportStatus) == 64, "SupportStatus");
_Static_assert(sizeof(VixDiskLibNasPluginDataStoreParams) == 40, "DataStoreParams");
_Static_assert(offsetof(VixDiskLibNasPluginDataStoreParams, fsVersion) == 8, "fsVersion");
_Static_assert(offsetof(VixDiskLibNasPluginDataStoreParams, remoteIP) == 16, "remoteIP");
_Static_assert(offsetof(VixDiskLibNasPluginDataStoreParams, remoteMountPoint) == 24, "rmp");
_Static_assert(offsetof(VixDiskLibNasPluginDataStoreParams, localMountPoint) == 32, "lmp");
_Static_assert(sizeof(VixDiskLibNasPluginSessionParams) == 8, "SessionParams");
_Static_assert(sizeof(VixDiskLibNasPluginProgressRecord) == 32, "ProgressRecord");
_Static_assert(offsetof(VixDiskLibNasPluginProgressRecord, updateBytes) == 8, "updateBytes");
_Static_assert(offsetof(VixDiskLibNasPluginProgressRecord, progressBytes) == 16, "progressB");
_Static_assert(offsetof(VixDiskLibNasPluginProgressRecord, callback) == 24, "callback");
_Static_assert(sizeof(VixDiskLibNasPluginStatXResult) == 40, "StatXResult");
_Static_assert(offsetof(VixDiskLibNasPluginStatXResult, totalBytes) == 8, "totalBytes");
_Static_assert(offsetof(VixDiskLibNasPluginStatXResult, allocType) == 32, "allocType");
_Static_assert(sizeof(VixDiskLibNasPluginCommonParams) == 24, "CommonParams");
_Static_assert(offsetof(VixDiskLibNasPluginCommonParams, progressRecord) == 8, "progressRec");
_Static_assert(offsetof(VixDiskLibNasPluginCommonParams, result) == 16, "result");
_Static_assert(sizeof(VixDiskLibNasPluginCloneFileParams) == 56, "CloneFileParams");
_Static_assert(offsetof(VixDiskLibNasPluginCloneFileParams, srcFileName) == 24, "src");
_Static_assert(offsetof(VixDiskLibNasPluginCloneFileParams, dstFileName) == 32, "dst");
_Static_assert(offsetof(VixDiskLibNasPluginCloneFileParams, cloneFlags) == 40, "flags");
_Static_assert(offsetof(VixDiskLibNasPluginCloneFileParams, srcDataStoreInfo) == 48, "srcds");
_Static_assert(sizeof(VixDiskLibNasPluginResvSpaceParams) == 32, "ResvSpaceParams");
_Static_assert(sizeof(VixDiskLibNasPluginStatXParams) == 32, "StatXParams");
_Static_assert(VIXDISKLIB_NASPLUGIN_PRIM_INVALID == 0x4E415330, "NAS0");
_Static_assert(VIXDISKLIB_NASPLUGIN_PRIM_STATX == 0x4E415333, "NAS3");

#define PRINT_SIZE(label, type) printf("%s %zu\n", label, sizeof(type))
#define PRINT_OFF(label, type, member) printf("%s %zu\n", label, offsetof(type, member))

static int print_layout(void)
{
   PRINT_SIZE("VixDiskLibPlugin", VixDiskLibPlugin);
   PRINT_OFF("VixDiskLibPlugin.majorVersion", VixDiskLibPlugin, majorVersion);
   PRINT_OFF("VixDiskLibPlugin.minorVersion", VixDiskLibPlugin, minorVersion);
   PRINT_OFF("VixDiskLibPlugin.type", VixDiskLibPlugin, type);
   PRINT_OFF("VixDiskLibPlugin.name", VixDiskLibPlugin, name);
   PRINT_OFF("VixDiskLibPlugin.Init", VixDiskLibPlugin, Init);
   PRINT_OFF("VixDiskLibPlugin.Done", VixDiskLibPlugin, Done);
   PRINT_SIZE("VixDiskLibNasPlugin", VixDiskLibNasPlugin);
   PRINT_OFF("VixDiskLibNasPlugin.StartSession", VixDiskLibNasPlugin, StartSession);
   PRINT_OFF("VixDiskLibNasPlugin.EndSession", VixDiskLibNasPlugin, EndSession);
   PRINT_OFF("VixDiskLibNasPlugin.ExecPrimitive", VixDiskLibNasPlugin, ExecPrimitive);
   PRINT_OFF("VixDiskLibNasPlugin.SupportStatus", VixDiskLibNasPlugin, SupportStatus);
   PRINT_SIZE("DataStoreParams", VixDiskLibNasPluginDataStoreParams);
   PRINT_OFF("DataStoreParams.fsType", VixDiskLibNasPluginDataStoreParams, fsType);
   PRINT_OFF("DataStoreParams.fsVersion", VixDiskLibNasPluginDataStoreParams, fsVersion);
   PRINT_OFF("DataStoreParams.remoteIP", VixDiskLibNasPluginDataStoreParams, remoteIP);
   PRINT_OFF("DataStoreParams.remoteMountPoint", VixDiskLibNasPluginDataStoreParams,
             remoteMountPoint);
   PRINT_OFF("DataStoreParams.localMountPoint", VixDiskLibNasPluginDataStoreParams,
             localMountPoint);
   PRINT_SIZE("SessionParams", VixDiskLibNasPluginSessionParams);
   PRINT_OFF("SessionParams.timeoutMS", VixDiskLibNasPluginSessionParams, timeoutMS);
   PRINT_SIZE("ProgressRecord", VixDiskLibNasPluginProgressRecord);
   PRINT_OFF("ProgressRecord.private", VixDiskLibNasPluginProgressRecord, private);
   PRINT_OFF("ProgressRecord.updateBytes", VixDiskLibNasPluginProgressRecord, updateBytes);
   PRINT_OFF("ProgressRecord.progressBytes", VixDiskLibNasPluginProgressRecord, progressBytes);
   PRINT_OFF("ProgressRecord.callback", VixDiskLibNasPluginProgressRecord, callback);
   PRINT_SIZE("ResultCommon", VixDiskLibNasPluginResultCommon);
   PRINT_SIZE("StatXResult", VixDiskLibNasPluginStatXResult);
   PRINT_OFF("StatXResult.totalBytes", VixDiskLibNasPluginStatXResult, totalBytes);
   PRINT_OFF("StatXResult.allocedBytes", VixDiskLibNasPluginStatXResult, allocedBytes);
   PRINT_OFF("StatXResult.uniqueBytes", VixDiskLibNasPluginStatXResult, uniqueBytes);
   PRINT_OFF("StatXResult.allocType", VixDiskLibNasPluginStatXResult, allocType);
   PRINT_SIZE("CommonParams", VixDiskLibNasPluginCommonParams);
   PRINT_OFF("CommonParams.primitiveID", VixDiskLibNasPluginCommonParams, primitiveID);
   PRINT_OFF("CommonParams.progressRecord", VixDiskLibNasPluginCommonParams, progressRecord);
   PRINT_OFF("CommonParams.result", VixDiskLibNasPluginCommonParams, result);
   PRINT_SIZE("CloneFileParams", VixDiskLibNasPluginCloneFileParams);
   PRINT_OFF("CloneFileParams.srcFileName", VixDiskLibNasPluginCloneFileParams, srcFileName);
   PRINT_OFF("CloneFileParams.dstFileName", VixDiskLibNasPluginCloneFileParams, dstFileName);
   PRINT_OFF("CloneFileParams.cloneFlags", VixDiskLibNasPluginCloneFileParams, cloneFlags);
   PRINT_OFF("CloneFileParams.srcDataStoreInfo", VixDiskLibNasPluginCloneFileParams,
             srcDataStoreInfo);
   PRINT_SIZE("ResvSpaceParams", VixDiskLibNasPluginResvSpaceParams);
   PRINT_OFF("ResvSpaceParams.fileName", VixDiskLibNasPluginResvSpaceParams, fileName);
   PRINT_SIZE("StatXParams", VixDiskLibNasPluginStatXParams);
   PRINT_OFF("StatXParams.fileName", VixDiskLibNasPluginStatXParams, fileName);
   printf("PrimitiveID.INVALID %u\n", (unsigned)VIXDISKLIB_NASPLUGIN_PRIM_INVALID);
   printf("PrimitiveID.STATX %u\n", (unsigned)VIXDISKLIB_NASPLUGIN_PRIM_STATX);
   printf("CloneFlags.SKIPZEROES %u\n", (unsigned)VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_SKIPZEROES);
   PRINT_SIZE("AllocType", VixDiskLibNasPluginAllocType);
   return 0;
}

/* ---- load mode ------------------------------------------------------------------------- */

static FILE *report;
static int failures;
static int checks;

#define CHECK(cond, ...)                                                                   \
   do {                                                                                    \
      checks++;                                                                            \
      if (!(cond)) {                                                                       \
         failures++;                                                                       \
         fprintf(report, "FAIL %s:%d: ", __FILE__, __LINE__);                              \
         fprintf(report, __VA_ARGS__);                                                     \
         fprintf(report, "\n");                                                            \
      }                                                                                    \
   } while (0)

static char logged[8192];
static size_t logged_len;
static int log_calls;

static void log_func(const char *fmt, va_list args)
{
   log_calls++;
   if (logged_len < sizeof logged) {
      int n = vsnprintf(logged + logged_len, sizeof logged - logged_len, fmt, args);
      if (n > 0) {
         logged_len += (size_t)n;
         if (logged_len > sizeof logged - 1) {
            logged_len = sizeof logged - 1;
         }
      }
   }
}

static int panic_calls;
static void panic_func(const char *fmt, va_list args)
{
   (void)fmt;
   (void)args;
   panic_calls++;
}

static double now_us(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static VixError start(VixDiskLibNasPlugin *nas, const char *fs, const char *ip, const char *rmp,
                      const char *lmp, double *took_us)
{
   VixDiskLibNasPluginDataStoreParams ds = {(char *)fs, 3, (char *)ip, (char *)rmp,
                                            (char *)lmp};
   VixDiskLibNasPluginSessionParams sp = {1000};
   VixDiskLibNasPluginSessionID id = 12345;
   double t0 = now_us();
   VixError err = nas->StartSession(&ds, &sp, &id);
   *took_us = now_us() - t0;
   if (err != VIX_OK) {
      CHECK(id == 12345, "a declined StartSession wrote a session ID");
   }
   return err;
}

static int load(const char *so, const char *foreign_dir)
{
   /* Anything the plugin writes to stdout or stderr lands in this file, checked at the end. */
   fflush(stdout);
   fflush(stderr);
   report = fdopen(dup(STDOUT_FILENO), "w");
   FILE *captured = tmpfile();
   int saved_err = dup(STDERR_FILENO);
   if (report == NULL || captured == NULL || saved_err < 0) {
      perror("host: setting up");
      return 2;
   }
   dup2(fileno(captured), STDOUT_FILENO);
   dup2(fileno(captured), STDERR_FILENO);

   void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
   if (lib == NULL) {
      fprintf(report, "FAIL dlopen: %s\n", dlerror());
      return 1;
   }
   VixDiskLibPlugin ***entry = (VixDiskLibPlugin ***)dlsym(lib, VIXDISKLIB_PLUGIN_ENTRYPOINT_NAME);
   CHECK(entry != NULL, "no symbol %s", VIXDISKLIB_PLUGIN_ENTRYPOINT_NAME);
   if (entry == NULL) {
      return 1;
   }
   VixDiskLibPlugin **list = *entry;
   CHECK(list != NULL && list[0] != NULL, "empty plugin list");
   CHECK(list[1] == NULL, "the plugin list is not NULL-terminated after one table");
   VixDiskLibPlugin *base = list[0];
   CHECK(base->type == VIXDISKLIB_PLUGIN_TYPE_NAS, "type %d, want NAS", (int)base->type);
   CHECK(base->majorVersion == VIXDISKLIB_NASPLUGIN_MAJOR_VERSION &&
            base->minorVersion == VIXDISKLIB_NASPLUGIN_MINOR_VERSION,
         "version %d.%d, want 1.2", base->majorVersion, base->minorVersion);
   CHECK(base->name != NULL && strcmp(base->name, "openvaai") == 0, "name");
   CHECK(base->Init != NULL && base->Done != NULL, "Init/Done missing");
   VixDiskLibNasPlugin *nas = (VixDiskLibNasPlugin *)base;
   CHECK(nas->StartSession && nas->EndSession && nas->ExecPrimitive && nas->SupportStatus,
         "a NAS entry point is NULL");

   CHECK(base->Init(log_func, log_func, panic_func) == VIX_OK, "Init failed");
   CHECK(log_calls > 0 && strstr(logged, "openvaai: ") != NULL, "Init logged nothing");

   /* Declines: not ours, no network, well under a millisecond each. */
   double us, worst = 0;
   CHECK(start(nas, "VMFS", "10.1.1.1", "/x", "/vmfs/volumes/a", &us) == VIX_E_NOT_SUPPORTED,
         "VMFS not declined");
   worst = us > worst ? us : worst;
   CHECK(start(nas, "NFS", NULL, "/x", foreign_dir, &us) == VIX_E_NOT_SUPPORTED,
         "NULL remoteIP not declined");
   worst = us > worst ? us : worst;
   CHECK(start(nas, "NFS41", "10.1.1.1", NULL, foreign_dir, &us) == VIX_E_NOT_SUPPORTED,
         "NULL remoteMountPoint not declined");
   worst = us > worst ? us : worst;
   CHECK(start(nas, "NFS", "10.1.1.1", "/x", NULL, &us) == VIX_E_NOT_SUPPORTED,
         "NULL localMountPoint not declined");
   worst = us > worst ? us : worst;
   CHECK(start(nas, "NFS", "10.1.1.1", "/export/a", foreign_dir, &us) == VIX_E_NOT_SUPPORTED,
         "a datastore without access file not declined");
   worst = us > worst ? us : worst;
   CHECK(start(nas, "NFS41", "10.1.1.1", "/export/a", foreign_dir, &us) == VIX_E_NOT_SUPPORTED,
         "an NFS41 datastore without access file not declined");
   worst = us > worst ? us : worst;
   fprintf(report, "slowest decline: %.1f us\n", worst);
   CHECK(worst < 1000.0, "a decline took %.1f us", worst);

   /* NULL pointers and unknown sessions: invalid arguments, never a crash. */
   VixDiskLibNasPluginSessionID id = 0;
   CHECK(nas->StartSession(NULL, NULL, &id) == VIX_E_INVALID_ARG, "NULL config");
   VixDiskLibNasPluginDataStoreParams ds = {"NFS", 3, "127.0.0.1", "/x", (char *)foreign_dir};
   CHECK(nas->StartSession(&ds, NULL, NULL) == VIX_E_INVALID_ARG, "NULL sessionID");
   CHECK(nas->EndSession(VIXDISKLIB_NASPLUGIN_INVALID_SESSION_ID) == VIX_E_INVALID_ARG,
         "EndSession(0)");
   CHECK(nas->EndSession(0x1234567890ULL) == VIX_E_INVALID_ARG, "EndSession(unknown)");
   CHECK(nas->SupportStatus(0, VIXDISKLIB_NASPLUGIN_PRIM_CLONEFILE) == VIX_E_INVALID_ARG,
         "SupportStatus(0)");
   CHECK(nas->SupportStatus(777, VIXDISKLIB_NASPLUGIN_PRIM_STATX) == VIX_E_INVALID_ARG,
         "SupportStatus(unknown)");

   nas->ExecPrimitive(777, NULL); /* nothing to report into: must simply return */
   VixDiskLibNasPluginStatXResult sx;
   memset(&sx, 0xAB, sizeof sx);
   VixDiskLibNasPluginStatXParams stp = {{VIXDISKLIB_NASPLUGIN_PRIM_STATX, NULL,
                                          &sx.common},
                                         "/vmfs/volumes/a/f.vmdk"};
   nas->ExecPrimitive(777, &stp.common);
   CHECK(sx.common.status == VIX_E_INVALID_ARG, "STATX on unknown session: %llu",
         (unsigned long long)sx.common.status);
   stp.fileName = NULL;
   sx.common.status = 0;
   nas->ExecPrimitive(777, &stp.common);
   CHECK(sx.common.status == VIX_E_INVALID_ARG, "STATX with NULL fileName");
   VixDiskLibNasPluginResultCommon rc = {0};
   VixDiskLibNasPluginCloneFileParams cp = {
      {VIXDISKLIB_NASPLUGIN_PRIM_CLONEFILE, NULL, &rc}, "/a", "/b",
      VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_SRCDATASTORE_VALID, NULL};
   nas->ExecPrimitive(777, &cp.common);
   CHECK(rc.status == VIX_E_INVALID_ARG, "CLONEFILE on unknown session");
   VixDiskLibNasPluginResvSpaceParams rp = {{VIXDISKLIB_NASPLUGIN_PRIM_INVALID, NULL, &rc},
                                            "/a"};
   rc.status = 0;
   nas->ExecPrimitive(777, &rp.common);
   CHECK(rc.status == VIX_E_INVALID_ARG, "unknown primitive");
   rp.common.result = NULL;
   nas->ExecPrimitive(777, &rp.common); /* no result pointer: must simply return */

   /* Init is counted: a second Init and one Done leave the plugin loaded. */
   CHECK(base->Init(log_func, log_func, panic_func) == VIX_OK, "second Init failed");
   base->Done();
   base->Done();
   CHECK(panic_calls == 0, "the plugin called disklib's panic function");

   dlclose(lib);

   fflush(stdout);
   fflush(stderr);
   long written = ftell(captured);
   CHECK(written == 0, "the plugin wrote %ld bytes to stdout/stderr", written);
   dup2(saved_err, STDERR_FILENO);
   fprintf(report, "log: %s", logged);
   fprintf(report, "%s: %d checks, %d failed\n", failures ? "FAILED" : "ok", checks, failures);
   fclose(report);
   return failures ? 1 : 0;
}

/* ---- e2e mode ------------------------------------------------------------------------- */

typedef struct {
   int calls;
   uint64 sum;
} Counter;

static Bool count_progress(VixDiskLibNasPluginProgressRecord *rec)
{
   Counter *c = (Counter *)rec->private;
   c->calls++;
   c->sum += rec->progressBytes;
   return TRUE;
}

static void e2e_clone(VixDiskLibNasPlugin *nas, VixDiskLibNasPluginSessionID id, const char *label,
                      char *src, char *dst, int flags)
{
   Counter counter = {0, 0};
   VixDiskLibNasPluginProgressRecord rec = {&counter, 1 << 20, 0, count_progress};
   VixDiskLibNasPluginResultCommon rc = {VIX_E_FAIL};
   VixDiskLibNasPluginCloneFileParams cp = {{VIXDISKLIB_NASPLUGIN_PRIM_CLONEFILE, &rec, &rc}, src,
                                            dst, (VixDiskLibNasPluginCloneFileFlags)flags, NULL};
   nas->ExecPrimitive(id, &cp.common);
   printf("%s.status %llu\n%s.callbacks %d\n%s.progress %llu\n", label,
          (unsigned long long)rc.status, label, counter.calls, label,
          (unsigned long long)counter.sum);
}

static int e2e(const char *so, char *mount, char *ip, char *export, const char *file)
{
   void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
   if (lib == NULL) {
      printf("dlopen %s\n", dlerror());
      return 1;
   }
   VixDiskLibPlugin **list = *(VixDiskLibPlugin ***)dlsym(lib, VIXDISKLIB_PLUGIN_ENTRYPOINT_NAME);
   VixDiskLibNasPlugin *nas = (VixDiskLibNasPlugin *)list[0];
   printf("init %llu\n", (unsigned long long)nas->diskLibPlugin.Init(log_func, log_func, panic_func));

   VixDiskLibNasPluginDataStoreParams ds = {"NFS41", 4, ip, export, mount};
   VixDiskLibNasPluginSessionParams sp = {5000};
   VixDiskLibNasPluginSessionID id = 0;
   printf("start %llu\n", (unsigned long long)nas->StartSession(&ds, &sp, &id));
   printf("session_nonzero %d\n", id != 0);
   printf("support.clone %llu\nsupport.resv %llu\nsupport.statx %llu\n",
          (unsigned long long)nas->SupportStatus(id, VIXDISKLIB_NASPLUGIN_PRIM_CLONEFILE),
          (unsigned long long)nas->SupportStatus(id, VIXDISKLIB_NASPLUGIN_PRIM_RESVSPACE),
          (unsigned long long)nas->SupportStatus(id, VIXDISKLIB_NASPLUGIN_PRIM_STATX));

   char src[4096], lazy[4096], full[4096];
   snprintf(src, sizeof src, "%s/%s", mount, file);
   snprintf(lazy, sizeof lazy, "%s/c-lazy.vmdk", mount);
   snprintf(full, sizeof full, "%s/c-full.vmdk", mount);

   VixDiskLibNasPluginStatXResult sx;
   memset(&sx, 0, sizeof sx);
   VixDiskLibNasPluginStatXParams stp = {{VIXDISKLIB_NASPLUGIN_PRIM_STATX, NULL, &sx.common}, src};
   nas->ExecPrimitive(id, &stp.common);
   printf("statx.status %llu\nstatx.total %llu\nstatx.alloced %llu\nstatx.unique %llu\n"
          "statx.type %d\n",
          (unsigned long long)sx.common.status, (unsigned long long)sx.totalBytes,
          (unsigned long long)sx.allocedBytes, (unsigned long long)sx.uniqueBytes,
          (int)sx.allocType);

   e2e_clone(nas, id, "lazy", src, lazy,
             VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_LAZY | VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_GUARDED);
   e2e_clone(nas, id, "full", src, full, 0);

   VixDiskLibNasPluginResultCommon rc = {VIX_E_FAIL};
   VixDiskLibNasPluginResvSpaceParams rp = {{VIXDISKLIB_NASPLUGIN_PRIM_RESVSPACE, NULL, &rc}, full};
   nas->ExecPrimitive(id, &rp.common);
   printf("resv.status %llu\n", (unsigned long long)rc.status);

   printf("end %llu\n", (unsigned long long)nas->EndSession(id));
   printf("end_again %llu\n", (unsigned long long)nas->EndSession(id));
   nas->diskLibPlugin.Done();
   dlclose(lib);
   return 0;
}

int main(int argc, char **argv)
{
   if (argc == 7 && strcmp(argv[1], "e2e") == 0) {
      return e2e(argv[2], argv[3], argv[4], argv[5], argv[6]);
   }
   if (argc == 2 && strcmp(argv[1], "layout") == 0) {
      return print_layout();
   }
   if (argc == 4 && strcmp(argv[1], "load") == 0) {
      return load(argv[2], argv[3]);
   }
   fprintf(stderr, "usage: host layout | host load PLUGIN.so FOREIGN_DIR\n");
   return 2;
}
