// Clang's thread-safety attributes, as macros that vanish on other compilers.
// With clang and -Wthread-safety the compiler checks what comments used to
// promise: a member marked WEBTIER_GUARDED_BY(mu_) is only touched with mu_
// held, a function marked WEBTIER_REQUIRES(mu_) is only called with it held,
// and WEBTIER_EXCLUDES catches a call that would take a lock its caller
// already holds. CI's ThreadSanitizer stage builds everything with clang and
// -Werror=thread-safety. The prefix is needed: Pistache defines a REQUIRES of
// its own. https://clang.llvm.org/docs/ThreadSafetyAnalysis.html has the
// semantics.
#pragma once

#if defined(__clang__)
#define WEBTIER_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define WEBTIER_THREAD_ANNOTATION(x)
#endif

// On a type: instances are a capability (a lock) named by `x` in messages.
#define WEBTIER_CAPABILITY(x) WEBTIER_THREAD_ANNOTATION(capability(x))
// On an RAII type that acquires in its constructor, releases in its destructor.
#define WEBTIER_SCOPED_CAPABILITY WEBTIER_THREAD_ANNOTATION(scoped_lockable)

// On data: read or written only while the lock is held (PT_: the pointee).
#define WEBTIER_GUARDED_BY(x) WEBTIER_THREAD_ANNOTATION(guarded_by(x))
#define WEBTIER_PT_GUARDED_BY(x) WEBTIER_THREAD_ANNOTATION(pt_guarded_by(x))
// On a lock: the order in which two locks may be taken.
#define WEBTIER_ACQUIRED_AFTER(...) WEBTIER_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define WEBTIER_ACQUIRED_BEFORE(...) WEBTIER_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))

// On functions: the caller must hold (or, for WEBTIER_EXCLUDES, must not hold) these.
#define WEBTIER_REQUIRES(...) WEBTIER_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define WEBTIER_REQUIRES_SHARED(...) WEBTIER_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define WEBTIER_EXCLUDES(...) WEBTIER_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On functions: they take or give back the lock themselves.
#define WEBTIER_ACQUIRE(...) WEBTIER_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define WEBTIER_ACQUIRE_SHARED(...) WEBTIER_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define WEBTIER_RELEASE(...) WEBTIER_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define WEBTIER_RELEASE_SHARED(...) WEBTIER_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define WEBTIER_RELEASE_GENERIC(...) WEBTIER_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define WEBTIER_TRY_ACQUIRE(...) WEBTIER_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// On functions: tells the analysis the lock is held from here on (checked at
// run time by the function, or not at all).
#define WEBTIER_ASSERT_CAPABILITY(x) WEBTIER_THREAD_ANNOTATION(assert_capability(x))
// On functions: returns a reference to the lock named.
#define WEBTIER_RETURN_CAPABILITY(x) WEBTIER_THREAD_ANNOTATION(lock_returned(x))

// Turns the analysis off for one function; every use says why.
#define WEBTIER_NO_THREAD_SAFETY_ANALYSIS WEBTIER_THREAD_ANNOTATION(no_thread_safety_analysis)
