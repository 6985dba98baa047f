// A real arm64 Linux kernel to run the package's arm64 addon on: Debian's own arm64 kernel booted in
// qemu-system-aarch64 (whole-system emulation, so TCP_INFO is that kernel's, unlike qemu-user's 4-byte
// emulation), with an initramfs holding busybox, an arm64 Node and what the test puts in /t. No disk, no
// network but loopback; the init script runs the test's commands, prints their output to the console and
// powers off. Boots in ≈ 5 s here.
//
// The kernel and busybox come from Debian's archive as arm64 packages; .ci/run fetches them into ASSETS
// (dpkg --add-architecture arm64, then apt-get download linux-image-<abi>-arm64:arm64 busybox-static:arm64).
import { execFile } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const ASSETS = '/var/cache/request-journey-arm64'
export const KERNEL = join(ASSETS, 'vmlinuz')
export const BUSYBOX = join(ASSETS, 'busybox')
export const QEMU_SYSTEM = '/usr/bin/qemu-system-aarch64'
/** arm64 glibc, libstdc++ and libatomic (libc6-arm64-cross, libstdc++6-arm64-cross, libatomic1-arm64-cross: the cross compiler's). */
export const ARM64_LIBS = '/usr/aarch64-linux-gnu/lib'
// libatomic: Node 26's arm64 build links it (24's does not; without it 26 will not start).
const NODE_LIBS = ['ld-linux-aarch64.so.1', 'libatomic.so.1', 'libc.so.6', 'libdl.so.2', 'libgcc_s.so.1', 'libm.so.6', 'libpthread.so.0', 'libstdc++.so.6']

/** Why the VM cannot boot here, or undefined when everything it needs is present. */
export function arm64VmMissing (): string | undefined {
  const missing = [QEMU_SYSTEM, KERNEL, BUSYBOX, ...NODE_LIBS.map(l => join(ARM64_LIBS, l))].filter(f => !existsSync(f))
  return missing.length === 0 ? undefined : `missing ${missing.join(', ')} (.ci/run installs qemu-system-arm, cpio and gcc-aarch64-linux-gnu, and fetches the arm64 kernel and busybox into ${ASSETS})`
}

/**
 * Boots the VM with `root` as its initramfs (after adding busybox, `node` and its libraries to it) and
 * runs `commands` (busybox sh, cwd /t) in it: the console's output.
 */
export async function bootArm64 (root: string, node: string, commands: string[], timeoutMs = 240_000): Promise<string> {
  for (const d of ['bin', 'lib', 'proc', 'sys', 'dev', 'tmp', 't']) mkdirSync(join(root, d), { recursive: true })
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'))
  copyFileSync(node, join(root, 'bin/node'))
  chmodSync(join(root, 'bin/node'), 0o755)
  for (const lib of NODE_LIBS) copyFileSync(join(ARM64_LIBS, lib), join(root, 'lib', lib))
  writeFileSync(join(root, 'init'), [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev',
    'ip link set lo up',
    'echo "vm: $(uname -m) $(uname -r)"',
    'cd /t',
    ...commands,
    'poweroff -f',
    ''
  ].join('\n'), { mode: 0o755 })
  const initrd = `${root}.cpio`
  await run('sh', ['-c', `find . | cpio -o -H newc --quiet > '${initrd}'`], { cwd: root, timeout: 60_000 })
  // -nic none: no network device (its boot ROM is not installed, and loopback is all the test uses).
  const { stdout } = await run(QEMU_SYSTEM, [
    '-M', 'virt', '-cpu', 'cortex-a57', '-smp', '2', '-m', '2048', '-nographic', '-no-reboot', '-nic', 'none',
    '-kernel', KERNEL, '-initrd', initrd, '-append', 'console=ttyAMA0 quiet panic=-1'
  ], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 })
  return stdout.replace(/\r/g, '')
}
