#!/usr/bin/env bash
# `make deb`: builds dist/portsyncd_<version>_<arch>.deb with dpkg-deb, then checks it with lintian.
#
# The binary is a release build with the Swift runtime linked in (--static-swift-stdlib), so the target needs
# no Swift toolchain; `Depends:` is computed by dpkg-shlibdeps and checked against the libraries the binary
# actually links. Layout, maintainer scripts and lintian notes: packaging/README.md.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
swift=${SWIFT:-swift}
scratch=.build-release   # git-ignored; never the main .build, so a parallel debug build keeps its lock

version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/PortSyncRuntime/Version.swift)
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "make-deb: no version in Sources/PortSyncRuntime/Version.swift" >&2; exit 1; }
changelog_version=$(sed -n '1s/^portsyncd (\([^)]*\)).*/\1/p' packaging/deb/changelog)
if [ "$changelog_version" != "$version" ]; then
    echo "make-deb: version $version, but packaging/deb/changelog starts at $changelog_version: add an entry" >&2
    exit 1
fi
deb=dist/portsyncd_${version}_${arch}.deb
# Reproducible timestamps: dpkg-deb clamps file times to this and uses it for the archive members.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# --- 1. The binary. No $ORIGIN run path (nothing is installed next to it); BIND_NOW for full RELRO.
echo "make-deb: building portsyncd $version (release, Swift runtime linked in)"
"$swift" build -c release --product portsyncd --static-swift-stdlib --scratch-path "$scratch" \
    --disable-local-rpath -Xlinker -z -Xlinker now
binary=$scratch/release/portsyncd

# Nothing of the toolchain may remain: the package must run where /opt/swift does not exist.
if ldd "$binary" | grep -E 'libswift|libFoundation|libdispatch|libBlocksRuntime|/opt/swift'; then
    echo "make-deb: $binary still needs the Swift toolchain's libraries (above)" >&2
    exit 1
fi

# --- 2. The file tree, in a staging directory removed on exit.
stage=$(mktemp -d /tmp/portsyncd-deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root=$stage/debian/portsyncd   # where dpkg-shlibdeps expects a package's files
umask 022
install -D -m 0755 "$binary" "$root/usr/bin/portsyncd"
# As dh_strip does for executables: symbols and comments go, the build id stays.
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/portsyncd"
install -D -m 0644 portsyncd.service "$root/lib/systemd/system/portsyncd.service"
install -D -m 0644 etc/portsyncd.toml "$root/etc/sonic/portsyncd.conf"
install -d "$root/usr/share/man/man8" "$root/usr/share/doc/portsyncd"
# The manual page carries the package's version in its footer.
sed "2s/\"portsyncd\"/\"portsyncd $version\"/" packaging/portsyncd.8 | gzip -9n > "$root/usr/share/man/man8/portsyncd.8.gz"
install -m 0644 README.md "$root/usr/share/doc/portsyncd/README.md"
install -m 0644 packaging/deb/copyright "$root/usr/share/doc/portsyncd/copyright"
# A native package (no Debian revision): its changelog is changelog.gz, not changelog.Debian.gz.
gzip -9n < packaging/deb/changelog > "$root/usr/share/doc/portsyncd/changelog.gz"
install -D -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/portsyncd"
"$root/usr/bin/portsyncd" --version | grep -qx "$version" || { echo "make-deb: stripped binary is broken" >&2; exit 1; }

# --- 3. Depends: from dpkg-shlibdeps (which wants a debian/control to read), then checked against the
# packages that own the libraries the binary names in DT_NEEDED.
mkdir -p "$root/DEBIAN"   # also how dpkg-shlibdeps recognises the package's root
printf 'Source: portsyncd\n\nPackage: portsyncd\nArchitecture: any\n' > "$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O debian/portsyncd/usr/bin/portsyncd | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "make-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
needed=$(
    for soname in $(readelf -d "$root/usr/bin/portsyncd" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        dpkg -S "/lib/$multiarch/$soname" 2>/dev/null || dpkg -S "/usr/lib/$multiarch/$soname"
    done | sed 's/:.*//' | sort -u
)
declared=$(tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ .*//' | sort -u)
if [ "$needed" != "$declared" ]; then
    echo "make-deb: Depends ($depends) does not match the linked libraries' packages: $(echo "$needed" | paste -sd' ')" >&2
    exit 1
fi

# --- 4. Control files and the archive.
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    -e "s/@DEPENDS@/$depends/" packaging/deb/control.in > "$root/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
built=$stage/$(basename "$deb")
dpkg-deb --root-owner-group --build "$root" "$built" >/dev/null
echo "make-deb: Depends: $depends"

# --- 5. lintian: errors and warnings fail the build; info tags are shown too. Each override is explained in
# packaging/deb/lintian-overrides and packaging/README.md. Only a package that passes reaches dist/.
lintian --fail-on error,warning --display-info "$built"
mkdir -p dist
mv -f "$built" "$deb"
echo "make-deb: $deb ($(du -h "$deb" | cut -f1), installed $((installed_size / 1024)) MiB), lintian clean"
