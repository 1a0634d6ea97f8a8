"""Rewrites a CUDA source (.cu / .cuh) so a host C++ compiler can build it against the emulator.

The one piece of CUDA syntax C++ cannot parse is the launch, `kernel<T><<<grid, block, smem,
stream>>>(args);`. It becomes
`::cuda_emu::launch(::cuda_emu::Config{grid, block, smem, stream}, [&](auto&&... a) { kernel<T>(a...); }, args);`:
the arguments are evaluated once, as CUDA does, and the emulator calls the kernel once per emulated
thread with them. Everything else (__global__, threadIdx,
__syncthreads, ...) is handled by the emulator's headers. A #line directive keeps __FILE__ and
compiler messages pointing at the original file.

usage: python3 translate.py <in.cu> <out.cpp>
"""

import re
import sys


def match(s, i, open_c, close_c, step):
    """s[i] is open_c (step 1, scanning forwards) or close_c (step -1, backwards): its partner's index."""
    depth = 0
    while 0 <= i < len(s):
        if s[i] == open_c:
            depth += step
        elif s[i] == close_c:
            depth -= step
        if depth == 0:
            return i
        i += step
    raise ValueError("unbalanced %s%s" % (open_c, close_c))


def translate(src):
    out = src
    while True:
        at = out.find("<<<")
        if at < 0:
            return out
        # The kernel expression before <<<: a name, maybe qualified, maybe with template arguments.
        j = at - 1
        while j >= 0 and out[j].isspace():
            j -= 1
        if out[j] == ">":
            j = match(out, j, "<", ">", -1) - 1
        m = re.search(r"[A-Za-z_][A-Za-z_0-9:]*$", out[:j + 1])
        if not m:
            raise ValueError("no kernel name before <<< at offset %d" % at)
        start = m.start()
        kernel = out[start:at].strip()
        end_cfg = out.index(">>>", at)
        cfg = out[at + 3:end_cfg].strip()
        k = end_cfg + 3
        while out[k].isspace():
            k += 1
        if out[k] != "(":
            raise ValueError("no argument list after >>> at offset %d" % at)
        close = match(out, k, "(", ")", 1)
        args = out[k + 1:close]
        call = "::cuda_emu::launch(::cuda_emu::Config{%s}, [&](auto&&... a_) { %s(a_...); }%s)" % (
            cfg, kernel, ", " + args if args.strip() else "")
        out = out[:start] + call + out[close + 1:]


def main():
    src_path, dst_path = sys.argv[1], sys.argv[2]
    with open(src_path) as f:
        src = f.read()
    text = '#line 1 "%s"\n%s' % (src_path, translate(src))
    with open(dst_path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
