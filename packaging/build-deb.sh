#!/bin/sh
# build-deb.sh - build the Debian package (make deb).
#
# dpkg-buildpackage wants debian/ at the top of a source tree, and ours lives
# in packaging/debian: copy the tree (the files git knows, tracked or new,
# as they are in the working tree, without what .gitignore ignores) to
# build/deb/wahagate-<VERSION>/, put packaging/debian there as debian/, and
# build the binary package. The .deb lands in build/deb/.
#
# The version has one source, the file VERSION (wahagate -V prints it): the
# newest entry of packaging/debian/changelog must carry the same version, or
# this stops and says how to fix it.
set -eu
cd "$(dirname "$0")/.."

version=$(cat VERSION)
changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "$changelog_version" != "$version" ]; then
    cat >&2 <<EOF
make deb: packaging/debian/changelog is at version $changelog_version, but VERSION says $version.
Add a changelog entry for $version at the top of packaging/debian/changelog
first: by hand, or with dch from devscripts:
    dch --changelog packaging/debian/changelog -v $version "What changed."
EOF
    exit 1
fi

out=build/deb
src=$out/wahagate-$version
rm -rf "$src"
mkdir -p "$src"

# The source files: git's list when this is a git checkout (new files that
# are not ignored included; a deleted file is reported by tar and skipped),
# else everything but the build output.
list=$out/files.list
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard > "$list"
else
    find . -path ./build -prune -o -path ./.git -prune -o \
        -path ./tests/browser/node_modules -prune -o -type f -print0 > "$list"
fi
tar --create --file="$out/source.tar" --null --files-from="$list" --ignore-failed-read
tar --extract --file="$out/source.tar" --directory="$src"
rm -f "$list" "$out/source.tar"

cp -R packaging/debian "$src/debian"
chmod +x "$src/debian/rules"

echo "make deb: building in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b)

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
echo "make deb: $out/wahagate_${version}_${arch}.deb"
