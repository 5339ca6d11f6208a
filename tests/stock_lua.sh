#!/bin/sh
# stock_lua.sh BUILD_DIR SOURCE_DIR -- Debian's stock lua5.4 loads acq from
# the build tree: the C module acq/core.so and the Lua files of lua/acq.
set -eu
build=$1 src=$2
out=$(LUA_CPATH="$build/lib/?.so;;" LUA_PATH="$src/lua/?.lua;$src/lua/?/init.lua;;" \
  lua5.4 -e 'print(require("acq").tensor{1,2}:sum():item())')
echo "$out"
test "$out" = 3
