/*
 * openvaai_nas_plugin.h -- the disklib NAS plugin interface, as openvaai implements it.
 *
 * Written for openvaai from the published description of VMware's vixDiskLibPlugin.h
 * (plugin interface 1.0) and vixDiskLibNasPlugin.h (NAS plugin interface 1.2). Types, sizes
 * and member order follow those headers exactly, so that a library built against this file
 * loads in disklib and a host built against it loads any NAS plugin.
 *
 * Target ABI: x86_64 Linux (LP64). `Bool` is a `char`, enums are `int`, `uint32`/`uint64`
 * are fixed width. The layout test (crates/abi/tests) static_asserts every size and offset.
 */
#ifndef OPENVAAI_NAS_PLUGIN_H
#define OPENVAAI_NAS_PLUGIN_H

#include <stdarg.h>
#include <stdint.h>

#if defined(__cplusplus)
extern "C" {
#endif

typedef uint32_t uint32;
typedef uint64_t uint64;
typedef char Bool;
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* ---- VixError: 64 bits, the low 16 bits are the code ---------------------------------- */

typedef uint64 VixError;
#define VIX_ERROR_CODE(err) ((err) & 0xFFFF)

enum {
   VIX_OK = 0,
   VIX_E_FAIL = 1,
   VIX_E_OUT_OF_MEMORY = 2,
   VIX_E_INVALID_ARG = 3,
   VIX_E_FILE_NOT_FOUND = 4,
   VIX_E_OBJECT_IS_BUSY = 5,
   VIX_E_NOT_SUPPORTED = 6,
   VIX_E_FILE_ERROR = 7,
   VIX_E_DISK_FULL = 8,
   VIX_E_INCORRECT_FILE_TYPE = 9,
   VIX_E_CANCELLED = 10,
   VIX_E_FILE_READ_ONLY = 11,
   VIX_E_FILE_ALREADY_EXISTS = 12,
   VIX_E_FILE_ACCESS_ERROR = 13,
   VIX_E_NOT_SUPPORTED_ON_REMOTE_OBJECT = 20,
   VIX_E_FILE_TOO_BIG = 21,
   VIX_E_FILE_NAME_INVALID = 22,
   VIX_E_OBJECT_NOT_FOUND = 25,
   VIX_E_HOST_NOT_CONNECTED = 26,
   VIX_E_AUTHENTICATION_FAIL = 35,
   VIX_E_HOST_CONNECTION_LOST = 36,
};

/* ---- The base plugin table (plugin interface 1.0) -------------------------------------- */

typedef void(VixDiskLibGenericLogFunc)(const char *fmt, va_list args);

#define VIXDISKLIB_PLUGIN_MAJOR_VERSION 1
#define VIXDISKLIB_PLUGIN_MINOR_VERSION 0

typedef enum {
   VIXDISKLIB_PLUGIN_TYPE_TRANSPORT = 0,
   VIXDISKLIB_PLUGIN_TYPE_NAS = 1,
   VIXDISKLIB_PLUGIN_TYPE_TRANSPORT_NO_UNLOAD = 2,
} VixDiskLibPluginType;

/* Called when the library is loaded; anything but VIX_OK and the plugin is not loaded. */
typedef VixError(VixDiskLibPluginInit)(VixDiskLibGenericLogFunc *log,
                                       VixDiskLibGenericLogFunc *warn,
                                       VixDiskLibGenericLogFunc *panic);
/* Called when the library is unloaded. */
typedef void(VixDiskLibPluginDone)(void);

typedef struct {
   int majorVersion;
   int minorVersion;
   VixDiskLibPluginType type;
   const char *name;
   VixDiskLibPluginInit *Init; /* optional */
   VixDiskLibPluginDone *Done; /* optional */
} VixDiskLibPlugin;

/*
 * The one exported data symbol: a pointer to a NULL-terminated array of pointers to plugin
 * tables. A loader does `VixDiskLibPlugin **list = *(VixDiskLibPlugin ***)dlsym(h, name)`.
 */
#define VIXDISKLIB_PLUGIN_ENTRYPOINT_NAME "VixDiskLibPlugin_EntryPoint"
extern VixDiskLibPlugin **VixDiskLibPlugin_EntryPoint;

/* ---- The NAS plugin interface (1.2) ---------------------------------------------------- */

#define VIXDISKLIB_NASPLUGIN_MAJOR_VERSION 1
#define VIXDISKLIB_NASPLUGIN_MINOR_VERSION 2

#define VIXDISKLIB_NASPLUGIN_FSTYPE_NFS "NFS"
#define VIXDISKLIB_NASPLUGIN_FSTYPE_NFS41 "NFS41"
#define VIXDISKLIB_NASPLUGIN_FSTYPE_VMFS "VMFS"
#define VIXDISKLIB_NASPLUGIN_FSTYPE_VMFSL "VMFS-L"

typedef struct {
   char *fsType;            /* ESX file-system type, e.g. "NFS", "NFS41", "VMFS". */
   uint32 fsVersion;        /* the file-system's ESX major version */
   char *remoteIP;          /* the NAS server's address; NULL if not NAS */
   char *remoteMountPoint;  /* the path the NAS exports; NULL if not NAS */
   char *localMountPoint;   /* where ESX mounts it, e.g. "/vmfs/volumes/xyz" */
} VixDiskLibNasPluginDataStoreParams;

typedef struct {
   /* Network timeout for each exchange with the NAS; 0 lets the plugin choose. */
   uint64 timeoutMS;
} VixDiskLibNasPluginSessionParams;

typedef uint64 VixDiskLibNasPluginSessionID;
#define VIXDISKLIB_NASPLUGIN_INVALID_SESSION_ID (0LL)

typedef enum {
   VIXDISKLIB_NASPLUGIN_PRIM_INVALID = (('N' << 24) | ('A' << 16) | ('S' << 8) | '0'),
   VIXDISKLIB_NASPLUGIN_PRIM_CLONEFILE,
   VIXDISKLIB_NASPLUGIN_PRIM_RESVSPACE,
   VIXDISKLIB_NASPLUGIN_PRIM_STATX,
} VixDiskLibNasPluginPrimitiveID;

struct VixDiskLibNasPluginProgressRecord;
/* Returns FALSE when the user aborts the operation. */
typedef Bool(VixDiskLibNasPluginPeriodicCallback)(struct VixDiskLibNasPluginProgressRecord *pRec);

typedef struct VixDiskLibNasPluginProgressRecord {
#if defined(__cplusplus)
   void *private_;        /* disklib's own; the plugin never touches it */
#else
   void *private;         /* disklib's own; the plugin never touches it */
#endif
   uint64 updateBytes;    /* call the callback every updateBytes bytes done (set by disklib) */
   uint64 progressBytes;  /* bytes done since the last call (set by the plugin) */
   VixDiskLibNasPluginPeriodicCallback *callback;
} VixDiskLibNasPluginProgressRecord;

typedef struct {
   VixError status;
} VixDiskLibNasPluginResultCommon;

/* Same values as disklib's DiskLibFileAllocationType. */
typedef enum VixDiskLibNasPluginAllocType {
   VIXDISKLIB_NASPLUGIN_FILE_ALLOC_EZT = 0,
   VIXDISKLIB_NASPLUGIN_FILE_ALLOC_LZT = 1,
   VIXDISKLIB_NASPLUGIN_FILE_ALLOC_THIN = 2,
   VIXDISKLIB_NASPLUGIN_FILE_ALLOC_UNKNOWN = -1,
} VixDiskLibNasPluginAllocType;

typedef struct {
   VixDiskLibNasPluginResultCommon common;
   uint64 totalBytes;   /* logical size */
   uint64 allocedBytes; /* bytes allocated; may be less than totalBytes */
   uint64 uniqueBytes;  /* allocated and shared with no other file or snapshot */
   VixDiskLibNasPluginAllocType allocType;
} VixDiskLibNasPluginStatXResult;

typedef struct {
   VixDiskLibNasPluginPrimitiveID primitiveID;
   VixDiskLibNasPluginProgressRecord *progressRecord;
   /* For STATX this points to a VixDiskLibNasPluginStatXResult. */
   VixDiskLibNasPluginResultCommon *result;
} VixDiskLibNasPluginCommonParams;

typedef enum {
   /* Fail if the destination exists; otherwise overwrite it. */
   VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_GUARDED = (1 << 0),
   /* Copy-on-write clone: finish fast, move data later. Otherwise a full physical copy. */
   VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_LAZY = (1 << 1),
   /* Source on another datastore: srcDataStoreInfo is valid. */
   VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_SRCDATASTORE_VALID = (1 << 2),
   /* Only check that this clone is supported; do nothing. */
   VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_DRYRUN = (1 << 3),
   /* Skip unallocated and zeroed blocks: a thin source gives a thin destination.
      Without it the destination is always thick. */
   VIXDISKLIB_NASPLUGIN_CLONEFILE_FLAG_SKIPZEROES = (1 << 4),
} VixDiskLibNasPluginCloneFileFlags;

typedef struct {
   VixDiskLibNasPluginCommonParams common;
   char *srcFileName; /* absolute paths on ESX, all links resolved */
   char *dstFileName;
   VixDiskLibNasPluginCloneFileFlags cloneFlags;
   VixDiskLibNasPluginDataStoreParams *srcDataStoreInfo; /* valid with SRCDATASTORE_VALID */
} VixDiskLibNasPluginCloneFileParams;

/*
 * RESVSPACE: reserve space for the file's whole logical length, keeping its data. The file
 * exists and has a non-zero length beforehand (ESX creates it and sets its length first).
 */
typedef struct {
   VixDiskLibNasPluginCommonParams common;
   char *fileName; /* absolute path on ESX, all links resolved */
} VixDiskLibNasPluginResvSpaceParams;

/* STATX: extended statistics of one file; common.result is a StatXResult. */
typedef struct {
   VixDiskLibNasPluginCommonParams common;
   char *fileName; /* absolute path on ESX, all links resolved */
} VixDiskLibNasPluginStatXParams;

typedef VixError(VixDiskLibNasPluginStartSession)(
   const VixDiskLibNasPluginDataStoreParams *nasConfigData,
   const VixDiskLibNasPluginSessionParams *sessionParams,
   VixDiskLibNasPluginSessionID *sessionID);

typedef VixError(VixDiskLibNasPluginEndSession)(VixDiskLibNasPluginSessionID sessionID);

typedef VixError(VixDiskLibNasPluginSupportStatus)(VixDiskLibNasPluginSessionID sessionID,
                                                   const VixDiskLibNasPluginPrimitiveID primitiveID);

/* The outcome goes to execParams->result->status. */
typedef void(VixDiskLibNasPluginExecutePrimitive)(VixDiskLibNasPluginSessionID sessionID,
                                                  const VixDiskLibNasPluginCommonParams *execParams);

typedef struct {
   VixDiskLibPlugin diskLibPlugin; /* must be first */
   VixDiskLibNasPluginStartSession *StartSession;
   VixDiskLibNasPluginEndSession *EndSession;
   VixDiskLibNasPluginExecutePrimitive *ExecPrimitive;
   VixDiskLibNasPluginSupportStatus *SupportStatus;
} VixDiskLibNasPlugin;

#if defined(__cplusplus)
}
#endif

#endif /* OPENVAAI_NAS_PLUGIN_H */
