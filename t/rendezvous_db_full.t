#!/usr/bin/perl

# A full disk under the peer database: registrations that need a write get
# SERVER_ERROR while it is full, and once space is freed the next ones are
# written again, without a restart.  Root only (the database is put on a
# small tmpfs mounted in the test directory).

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::Sqlite qw/ has_sqlite3 sql /;

plan(skip_all => 'needs root (a tmpfs mount)') if $> != 0;

my $t = Test::Nginx->new()->has();

Test::More::plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();

my $d = $t->testdir();
my $mnt = "$d/small";

mkdir $mnt or die "$!\n";
system('mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', $mnt) == 0
	or plan(skip_all => 'cannot mount a tmpfs');

END { system('umount', '-l', $mnt) if $mnt && -d $mnt; }

$t->plan(4)->allow_log(qr/database write of peer .* failed/);

mkdir "$mnt/db" or die "$!\n";

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	"rustdesk_database $mnt/db/db_v2.sqlite3;",
], srv_rendezvous(0)));

$t->run();

is(reg_pk('full-0001'), 0, 'registered');

# fill the disk: a file takes what is left, then registrations until one
# fails (the WAL grows into the last pages)

# all but 48 KiB: the WAL grows into those until a write fails
system("dd if=/dev/zero of=$mnt/filler bs=4k 2>/dev/null");
truncate("$mnt/filler", (-s "$mnt/filler") - 48 * 1024);

my ($n, $rc) = (1, 0);
while ($rc == 0 && $n < 2000) {
	$rc = reg_pk(sprintf('full-%04d', ++$n));
}

is($rc, 7, "the disk full: RegisterPk gets SERVER_ERROR (after $n)");

unlink "$mnt/filler";

my @after = map { reg_pk(sprintf('free-%04d', $_)) } 1 .. 20;
is(join(' ', @after), join(' ', ('0') x 20),
	'space freed: registrations are written again');

is(sql("$mnt/db/db_v2.sqlite3", "select count(*) from peer where id like 'free-%'"),
	20, '... all of them in the database');

###############################################################################

# The result of a RegisterPk of a new id from a new socket.
sub reg_pk {
	my ($id) = @_;
	my $u = RustDesk::Client->udp(port(0));

	$u->send_msg(register_pk => { id => $id, uuid => "u-$id",
		pk => 'k' x 32 });

	my ($type, $m) = $u->recv_msg(10);
	return $type // 'timeout' unless ($type // '') eq 'register_pk_response';
	return $m->{result} // 0;
}

###############################################################################
