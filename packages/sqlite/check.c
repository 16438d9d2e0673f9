/* An in-memory database using a math function, and a session object:
 * node:sqlite needs the session extension. The session API is declared
 * only with SQLITE_ENABLE_SESSION, as node.gyp defines it. */
#define SQLITE_ENABLE_SESSION 1
#include <sqlite3.h>
#include <stdio.h>

int main(void) {
    sqlite3 *db;
    sqlite3_session *session;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        return 1;
    if (sqlite3_exec(db, "create table t(a primary key, b); insert into t values(1, sqrt(4))", 0, 0, 0) != SQLITE_OK)
        return 2;
    if (sqlite3session_create(db, "main", &session) != SQLITE_OK)
        return 3;
    sqlite3session_delete(session);
    sqlite3_close(db);
    printf("sqlite %s: sqrt() and session ok\n", sqlite3_libversion());
    return 0;
}
