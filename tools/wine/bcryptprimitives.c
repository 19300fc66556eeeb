/*
 * bcryptprimitives.dll for Wine 8 (Debian 12), which does not have it: Go's runtime on Windows
 * loads ProcessPrng from it at start-up (for its own randomness and crypto/rand) and throws
 * "bcryptprimitives.dll not found" without it. This one gives the same bytes Windows' does, from
 * BCryptGenRandom with the system RNG, which Wine has. It is used only to run the tests in Wine
 * (make test-windows); the plugin's DLL neither ships nor needs it.
 *
 *   x86_64-w64-mingw32-gcc -O2 -shared -o bcryptprimitives.dll bcryptprimitives.c -lbcrypt
 */
#include <windows.h>
#include <bcrypt.h>

/* ProcessPrng fills data with len random bytes; it always succeeds on Windows (returns TRUE). */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
