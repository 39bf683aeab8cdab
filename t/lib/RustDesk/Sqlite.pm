package RustDesk::Sqlite;

# The peer database as the tests read it: the sqlite3 CLI on the file, as
# the user that owns it (the workers run as nobody when the tests run as
# root: a root CLI on a live database could leave -wal or -shm files the
# workers cannot write).
#
#     plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();
#     my $n = sql($db, 'select count(*) from peer');

use warnings;
use strict;

use Exporter qw/ import /;
use POSIX ();

our @EXPORT_OK = qw/ has_sqlite3 sql become /;

sub has_sqlite3 {
	return scalar grep { -x "$_/sqlite3" } split /:/, $ENV{PATH};
}

# The CLI's output for the query, chomped, errors included: as the file's
# owner (or as we are, if it does not exist yet), fields separated by |,
# waiting up to 5 s for a lock.
sub sql {
	my ($file, $query) = @_;
	my $uid = -e $file ? (stat $file)[4] : $>;

	my $pid = open(my $fh, '-|') // die "fork: $!\n";

	if ($pid == 0) {
		open STDERR, '>&', \*STDOUT;
		become($uid);
		exec('sqlite3', '-batch', '-separator', '|', '-cmd', '.timeout 5000',
			$file, $query) or POSIX::_exit(127);
	}

	local $/;
	my $out = <$fh> // '';
	close $fh;
	$out =~ s/\n+\z//;

	return $out;
}

# In a child: the user (and its group) given, if not the one we are.
sub become {
	my ($uid) = @_;

	return if $uid == $>;

	my $gid = (getpwuid($uid))[3];
	POSIX::setgid($gid) if defined $gid;
	POSIX::setuid($uid);
}

1;
