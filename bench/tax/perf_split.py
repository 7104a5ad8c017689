# SPDX-License-Identifier: MIT (see LICENSE)
"""perf_split.py: one gallery profile (bench/tax/profile.sh) as shares per
thread group and category, so a worker's profile and the main thread's for
the same jobs compare line by line.
Groups: the serial jobs (main thread, before the first worker sample), the
workers (ours: async-w*, the love.thread baseline: "@string"), the main
thread while they run. Kernel samples are named by the system call or fault
they serve, found on their call chain.
  python3 bench/tax/perf_split.py FILE.data..."""
import collections
import re
import subprocess
import sys

WORKER = re.compile(r'^(async-w\d+|@string)$')
KERNEL = [('exc_page_fault', 'page faults'), ('__x64_sys_munmap', 'munmap'),
          ('__x64_sys_mprotect', 'mprotect'), ('__x64_sys_mmap', 'mmap'),
          ('__x64_sys_futex', 'futex'), ('__x64_sys_madvise', 'madvise'),
          ('__x64_sys_getrusage', 'getrusage'), ('__x64_sys_nanosleep', 'sleep'),
          ('__x64_sys_clock_nanosleep', 'sleep')]
LUAJIT = [(r'(lj_gc|gc_|atomic|propagate|lj_mem_|sweep)', 'LuaJIT GC'),
          (r'(lj_alloc|direct_|sys_|release_|tmalloc|add_segment|prepend|init_top|alloc_)', 'LuaJIT allocator'),
          (r'(lj_tab|rehash|resize|hash|newkey|clearpart|countint|bestasize|newtab)', 'LuaJIT tables'),
          (r'(lj_vm_|lj_BC|lj_ff|lj_meta|lj_func|lj_dispatch|lj_lib|lj_cf|lj_str|lj_buf|lj_fast)', 'LuaJIT interpreter and library'),
          (r'(lj_record|rec_|lj_asm|asm_|lj_ir|lj_opt|lj_trace|trace_|lj_snap|lj_mcode|fold_|split_)', 'LuaJIT trace compiler'),
          (r'(lua_|luaL_|index2adr)', 'Lua C API')]


def category(sym, dso, chain):
    if dso.startswith('/tmp/perf-') or dso.startswith('[JIT]'):
        return 'JIT-compiled traces'
    if 'kernel' in dso:
        for line in chain:
            for marker, name in KERNEL:
                if marker in line:
                    return 'kernel: ' + name
        return 'kernel: other'
    if 'luajit' in dso:
        for pattern, name in LUAJIT:
            if re.match(pattern, sym):
                return name
        return 'LuaJIT: other'
    if 'libc' in dso:
        return 'libc memset/memcpy' if 'mem' in sym else 'libc: other'
    if 'async' in dso:
        return 'async (codec, calls)'
    return 'other'


def samples(path):
    text = subprocess.run(['perf', 'script', '-i', path, '-F', 'comm,time,ip,sym,dso'],
                          capture_output=True, text=True, check=True).stdout
    for block in text.split('\n\n'):
        lines = [line for line in block.splitlines() if line.strip()]
        head = re.match(r'\s*(\S+)\s+([\d.]+):', lines[0]) if lines else None
        if head is None or len(lines) < 2:
            continue
        leaf = lines[1].strip()
        dso = re.search(r'\(([^)]*)\)\s*$', leaf)
        body = leaf[:dso.start()].split(None, 1) if dso else ['', '']
        sym = re.sub(r'\+0x[0-9a-f]+$', '', body[1] if len(body) > 1 else '')
        yield head.group(1), float(head.group(2)), sym, dso.group(1) if dso else '', lines[1:]


def main():
    for path in sys.argv[1:]:
        rows = list(samples(path))
        first = min((t for comm, t, *_ in rows if WORKER.match(comm)), default=None)
        groups = collections.defaultdict(collections.Counter)
        for comm, t, sym, dso, chain in rows:
            if WORKER.match(comm):
                group = 'workers'
            elif comm == 'love':
                group = 'serial jobs (main)' if first is None or t < first else 'main, workers running'
            else:
                continue
            groups[group][category(sym, dso, chain)] += 1
        print('==', path)
        for group in ('serial jobs (main)', 'workers', 'main, workers running'):
            total = sum(groups[group].values())
            if total:
                top = sorted(groups[group].items(), key=lambda kv: -kv[1])[:12]
                print(f'  {group:22s} {total:6d} samples: ' +
                      ', '.join(f'{name} {100 * n / total:.1f}%' for name, n in top))


if __name__ == '__main__':
    main()
