/*
 * fcgi_lib_path(): the path of the libfcgi.so.* this process has mapped (from /proc/self/maps),
 * so a test can tell which library a program actually runs on. Uses the C library's stdio:
 * include it before fcgi_stdio.h renames fopen and friends.
 */
#ifndef ABI_LIBPATH_H
#define ABI_LIBPATH_H

#include <stdio.h>
#include <string.h>

static const char *fcgi_lib_path(void)
{
    static char path[4096];
    char line[4096 + 128];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL)
        return "?";
    strcpy(path, "?");
    while (fgets(line, sizeof line, maps) != NULL) {
        char *p = strchr(line, '/');
        if (p != NULL && strstr(p, "/libfcgi.so") != NULL) {
            p[strcspn(p, "\n")] = '\0';
            strncpy(path, p, sizeof path - 1);
            path[sizeof path - 1] = '\0';
            break;
        }
    }
    fclose(maps);
    return path;
}

#endif
