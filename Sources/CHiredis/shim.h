#pragma once
/* Thin shim over hiredis: the async API and the reply reader. Nothing else. */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
