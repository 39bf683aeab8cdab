#!/usr/bin/perl

# The nginx addon script (config): on a system the worker channel cannot
# run on it stops configure with a clear message, before anything else.

use warnings;
use strict;

use Test::More tests => 4;
use Cwd qw/ getcwd /;

my $root = getcwd();

# configure sources an addon's config with its own variables set; only
# those the check reads are needed here
sub source_config {
	my ($system) = @_;

	my $out = `NGX_SYSTEM='$system' ngx_addon_dir='$root' \\
		sh -c '. "\$ngx_addon_dir/config"; echo reached the libraries' \\
		2>&1`;

	return ($? >> 8, $out);
}

for my $system (qw/ FreeBSD Darwin /) {
	my ($rc, $out) = source_config($system);
	is($rc, 1, "$system: configure stops");
	like($out, qr/ngx_rustdesk runs on Linux only \(this is "$system"\)/,
		"$system: the reason is named");
}
