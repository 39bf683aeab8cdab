#!/usr/bin/perl

# The Debian package, for real: installed into this system's nginx with
# apt-get, a rustdesk stream {} file put into /etc/nginx on loopback test
# ports (made by the package's rustdesk-nginx-conf from hbbs and hbbr
# command lines), the system's nginx binary started with the modules its package
# setup loads (/etc/nginx/modules-enabled), a registration, relay request
# and relayed session served, then the package reinstalled, removed and
# purged: the key pair and database stay, and nothing else of the system's
# nginx has changed.
#
# It changes the system (root only), so it runs only when asked:
#     TEST_SYSTEM_PACKAGE=build/libnginx-mod-stream-rustdesk_..._amd64.deb \
#     prove t/system/deb.t                            (make test-deb)
#
# The system's own /etc/nginx/nginx.conf is tested (nginx -t) but not run:
# its default site listens on port 80 of every address.  The nginx started
# here uses the same binary, the same modules-enabled directory and the
# stream file in /etc/nginx, with its pid and logs in the test directory.

use warnings;
use strict;

use Test::More;
use File::Find;
use File::Spec;
use File::Temp qw/ tempdir /;
use Digest::MD5;
use IO::Socket::INET;
use MIME::Base64;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port_base /;
use RustDesk::Session;

my $DEB = $ENV{TEST_SYSTEM_PACKAGE};
$DEB = File::Spec->rel2abs($DEB) if $DEB;

plan(skip_all => 'the package test changes the system: '
	. 'TEST_SYSTEM_PACKAGE=<.deb> (make test-deb)') unless $DEB;
plan(skip_all => 'root only') if $> != 0;

my $PKG = 'libnginx-mod-stream-rustdesk';
my $DATA = '/var/lib/rustdesk';
my $STREAM_CONF = '/etc/nginx/rustdesk-test.conf';
my $MARK = "$DATA/.made-by-the-package-test";
my $SYSTEM_NGINX = '/usr/sbin/nginx';

die "$DEB: no such file\n" unless -f $DEB;

# state this test may leave behind if it was killed: only ever its own
if (installed()) {
	BAIL_OUT("$PKG is installed already: remove it first");
}
if (-e $DATA) {
	BAIL_OUT("$DATA exists and was not made by this test: move it away")
		unless -e $MARK;
	system('rm', '-rf', $DATA);
}

my $d = tempdir('rustdesk-deb-XXXXXXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $d;

my $run_pid_existed = -e '/run/nginx.pid';
my $before = snapshot();
my ($nginx, $ports);

# (not when the test was skipped: nothing was set up, and $PKG is not set
# yet, so that installed() would ask dpkg about every package and apt-get
# would purge none, failing when another apt-get holds the lock)
END {
	return unless defined $PKG;
	stop_nginx();
	unlink $STREAM_CONF;
	system("apt-get purge -y -qq $PKG > /dev/null 2>&1") if installed();
	system('rm', '-rf', $DATA) if -e $MARK;
	unlink '/run/nginx.pid' unless $run_pid_existed;
}

###############################################################################

# installed as Debian installs its nginx modules

apt("install -y -qq --no-install-recommends $DEB");
ok(installed(), 'apt-get install ./*.deb') or BAIL_OUT('not installed');

my $link = '/etc/nginx/modules-enabled/70-mod-stream-rustdesk.conf';
is(readlink($link), '/usr/share/nginx/modules-available/mod-stream-rustdesk.conf',
	'enabled through /etc/nginx/modules-enabled, after the stream module');
is(slurp($link), "load_module modules/ngx_stream_rustdesk_rendezvous_module.so;\n"
	. "load_module modules/ngx_stream_rustdesk_relay_module.so;\n",
	'its load_module lines');
ok(-f "/usr/lib/nginx/modules/ngx_stream_rustdesk_${_}_module.so",
	"$_ module in /usr/lib/nginx/modules") for qw/ rendezvous relay /;
ok(-x '/usr/bin/rustdesk-nginx-conf', 'rustdesk-nginx-conf in /usr/bin');
ok(-f "/usr/share/doc/$PKG/examples/$_", "example $_")
	for qw/ nginx.conf rustdesk.conf nginx-wss-http.conf nginx-wss-stream.conf /;
like(`dpkg-query -W -f '\${Depends}' $PKG`, qr/\bnginx-abi-[\d.]+-\d+\b/,
	'depends on the nginx ABI it was built for');

my @st = stat($DATA);
ok(@st && ($st[2] & 07777) == 0700
	&& getpwuid($st[4]) eq 'www-data' && getgrgid($st[5]) eq 'www-data',
	"$DATA made, www-data's, mode 0700");
write_file($MARK, '', 0600);

my ($rc, $out) = system_test();
is($rc, 0, "the system's nginx.conf still passes nginx -t with the modules")
	or diag($out);

###############################################################################

# a key pair of the user's own and a database already there: used as they
# are, never replaced

my ($sk_b64, $pk_b64) = key_pair();
write_file("$DATA/id_ed25519", $sk_b64, 0600);
write_file("$DATA/id_ed25519.pub", $pk_b64, 0644);

write_file($STREAM_CONF, stream_conf(), 0644);

($rc, $out) = start_nginx();
ok($rc, 'the system nginx starts with the stream file rustdesk-nginx-conf '
	. 'made') or diag($out);

my $why = RustDesk::Session::relayed_session(host => '127.0.0.1',
	rendezvous_port => $ports->{main}, relay_port => $ports->{relay},
	key => $pk_b64);
is($why, '', 'registration, relay request and relayed session served');

is(RustDesk::Session::relay_refused(host => '127.0.0.1',
	relay_port => $ports->{relay}, key => 'not-the-key'), '',
	'a relay client with a wrong key is refused');

stop_nginx();

is(join('', grep { /\[(alert|crit|emerg)\]/ } split /^/, slurp("$d/error.log")),
	'', 'no alert in the error log');
ok(-s "$DATA/db_v2.sqlite3", 'the peer database was made');
chomp(my $peers = `sqlite3 $DATA/db_v2.sqlite3 'select count(*) from peer' 2>&1`);
ok($peers > 0, "the registered peer is in it ($peers)");
is(slurp("$DATA/id_ed25519"), $sk_b64, 'the secret key is the user\'s');

my %data = data_sums();

apt("install -y -qq --reinstall $DEB");
is_deeply({ data_sums() }, \%data, 'a reinstall keeps the keys and database');

###############################################################################

# removed, then purged: the modules and their link go, the data stays

apt("remove -y -qq $PKG");
ok(!-e "/usr/lib/nginx/modules/ngx_stream_rustdesk_rendezvous_module.so",
	'remove: the modules are gone');
ok(!-e $link, 'remove: the module link is disabled');

apt("purge -y -qq $PKG");
ok(!installed(), 'purge: the package is gone');
is_deeply({ data_sums() }, \%data, 'purge keeps the keys and database');

unlink $STREAM_CONF;

is(join("\n", diff($before, snapshot())), '',
	'nothing else of the system nginx changed');

($rc, $out) = system_test();
is($rc, 0, "the system's nginx.conf passes nginx -t after the purge")
	or diag($out);

done_testing();

###############################################################################

sub installed {
	return `dpkg-query -W -f '\${Status}' $PKG 2>/dev/null`
		=~ /install ok installed/;
}

sub apt {
	my ($args) = @_;

	my $out = `DEBIAN_FRONTEND=noninteractive apt-get $args 2>&1`;
	diag("apt-get $args:\n$out") if $?;
	return $?;
}

sub system_test {
	my $out = `$SYSTEM_NGINX -t 2>&1`;
	return ($? >> 8, $out);
}

# The stream file, as a user moving from rustdesk-server makes it: the
# package's rustdesk-nginx-conf from hbbs's and hbbr's command lines, on
# ports chosen free at run time, all on 127.0.0.1.
sub stream_conf {
	my $n = port_base(-1, 0, 2, 4);
	my $q;
	do { $q = port_base(0, 2, 4) } while abs($q - $n) < 8;

	$ports = { main => $n, relay => $q };

	my $cmd = "env -i PATH=/usr/bin:/bin /usr/bin/rustdesk-nginx-conf -d $DATA"
		. " 'hbbs -b 127.0.0.1 -p $n -k _' 'hbbr -b 127.0.0.1 -p $q -k _'";
	my $out = `$cmd 2>$d/convert.log`;
	die "rustdesk-nginx-conf failed: " . slurp("$d/convert.log") . "\n" if $?;

	return "# written by the package test; removed when it ends\n" . $out;
}

# The system's binary and module setup, this test's pid and logs; in the
# foreground under timeout(1), so that it stops even if the test dies.
sub start_nginx {
	write_file("$d/nginx.conf", <<"EOF", 0644);
user www-data;
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log info;

include /etc/nginx/modules-enabled/*.conf;

events {}

include $STREAM_CONF;
EOF

	my $out = `$SYSTEM_NGINX -c $d/nginx.conf -t 2>&1`;
	return (0, $out) if $?;

	$nginx = fork() // die "fork: $!\n";

	if ($nginx == 0) {
		exec('timeout', '300', $SYSTEM_NGINX, '-c', "$d/nginx.conf",
			'-g', 'daemon off;');
		exit 127;
	}

	# up when its listeners answer
	for (1 .. 100) {
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
			PeerPort => $ports->{relay}, Proto => 'tcp');
		return (1, '') if $s;
		sleep 0.05;
	}

	return (0, -e "$d/error.log" ? slurp("$d/error.log") : 'no error log');
}

sub stop_nginx {
	return unless $nginx;

	kill 'QUIT', $nginx;
	waitpid($nginx, 0);
	undef $nginx;
}

sub key_pair {
	require Crypt::PK::Ed25519;

	my $k = Crypt::PK::Ed25519->new()->generate_key();
	my $pk = $k->export_key_raw('public');

	return (encode_base64($k->export_key_raw('private') . $pk, ''),
		encode_base64($pk, ''));
}

sub data_sums {
	return map { $_ => md5_file("$DATA/$_") } qw/ id_ed25519 id_ed25519.pub
		db_v2.sqlite3 /;
}

# What the package must leave as it found it: nginx's configuration, its
# modules and their load files; each path with its type, mode, owner and
# content (or link target).
sub snapshot {
	my %s;

	for my $top (qw{ /etc/nginx /usr/lib/nginx /usr/share/nginx }) {
		next unless -e $top;

		find({ no_chdir => 1, wanted => sub {
			my @st = lstat($_);
			my $what = -l _ ? 'link ' . readlink($_)
				: -d _ ? 'dir' : 'file ' . md5_file($_);
			$s{$_} = sprintf('%s %o %d:%d', $what, $st[2] & 07777,
				$st[4], $st[5]);
		} }, $top);
	}

	return \%s;
}

sub diff {
	my ($a, $b) = @_;
	my %all = (%$a, %$b);

	return map { "$_: " . ($a->{$_} // 'absent') . ' -> '
			. ($b->{$_} // 'absent') }
		grep { ($a->{$_} // '') ne ($b->{$_} // '') } sort keys %all;
}

sub md5_file {
	my ($name) = @_;

	open(my $fh, '<', $name) or return 'unreadable';
	binmode $fh;
	return Digest::MD5->new()->addfile($fh)->hexdigest();
}

sub slurp {
	my ($name) = @_;

	open(my $fh, '<', $name) or return '';
	local $/;
	return <$fh>;
}

sub write_file {
	my ($name, $content, $mode) = @_;

	open(my $fh, '>', $name) or die "$name: $!\n";
	print $fh $content;
	close $fh;
	chmod $mode, $name;
}
