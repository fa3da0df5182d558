#!/usr/bin/perl
# A FastCGI application written with Debian's FCGI module (libfcgi-perl: FCGI.so calls libfcgi's
# FCGX_* functions), used by tests/libfcgi_perl.rs. Unmodified, it runs on whichever
# libfcgi.so.0 the dynamic loader finds (LD_LIBRARY_PATH).
#
#   perl fcgi_echo.pl SOCKET      SOCKET: a Unix socket path or "host:port" (FCGI::OpenSocket)
#   perl fcgi_echo.pl -           the listening socket is fd 0 (spawn-fcgi, cgi-fcgi -start);
#                                 when fd 0 is not a socket, FCGI.pm (FCGX_IsCGI) runs the
#                                 script once as a plain CGI program
#
# Every response carries a Content-Length (so an HTTP/1.1 client can keep its connection) and a
# text/plain body of NAME=VALUE lines:
#   COUNT        requests accepted by this process so far (1 for the first)
#   PID          this process
#   REQUEST_METHOD, QUERY_STRING, CONTENT_LENGTH, SCRIPT_NAME, FCGI_ROLE   from %ENV
#   BODY_LENGTH  bytes read from STDIN (read() until it returned 0)
#   BODY_SHA256  their SHA-256
#   EOF          1 if eof(STDIN) (FCGX_HasSeenEOF) is true after the body
#   CONNECTIONS  the inodes of this process's open sockets other than the listening one
# QUERY_STRING flags:
#   warn=1       prints a line on STDERR (a FastCGI stderr record)
#   detach=1     Detach, fork (the child leaves at once with POSIX::_exit), waitpid, Attach,
#                then answer
#   detach=exit  the same with a child that leaves with exit: FCGI's destructor runs in the
#                child (FCGX_Free of its copy of the detached request), which must not disturb
#                the parent's connection
#   flush=1      $req->Flush() after the headers
#   last=1       $req->LastCall() (FCGX_ShutdownPending): the accept loop ends after this request
#   nofinish=1   no explicit $req->Finish(): the next Accept finishes the request first
# On its real stderr it prints "fcgi_echo.pl: ready, IsFastCGI=0|1" once listening and
# "fcgi_echo.pl: accept returned N after C requests" when the loop ends; it then exits 0.
use strict;
use warnings;
use FCGI;
use Digest::SHA;
use POSIX ();

my $path = shift @ARGV or die "usage: $0 SOCKET|-\n";
my $sock = 0;
if ($path ne "-") {
    $sock = FCGI::OpenSocket($path, 64);
    die "fcgi_echo.pl: OpenSocket($path) failed\n" if !defined $sock || $sock < 0;
}
my $listen_inode = (stat(_fd_path($sock)))[1];

sub _fd_path { return "/proc/self/fd/$_[0]" }

sub connections {
    my @inodes;
    opendir(my $dh, "/proc/self/fd") or return "?";
    for my $fd (sort { $a <=> $b } grep { /^\d+$/ } readdir $dh) {
        my $target = readlink(_fd_path($fd)) // next;
        next unless $target =~ /^socket:\[(\d+)\]$/;
        next if $1 == $listen_inode;
        push @inodes, $1;
    }
    closedir $dh;
    return join(",", @inodes);
}

my $req = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%ENV, $sock);
print STDERR "fcgi_echo.pl: ready, IsFastCGI=" . ($req->IsFastCGI() ? 1 : 0) . "\n";
my $count = 0;
my $rc;
while (($rc = $req->Accept()) >= 0) {
    $count++;
    my $qs = $ENV{QUERY_STRING} // "";
    my %q = map { my ($k, $v) = split /=/, $_, 2; ($k => $v // "") } grep { length } split /&/, $qs;

    my $sha = Digest::SHA->new(256);
    my $len = 0;
    my $buf;
    while (1) {
        my $n = read(STDIN, $buf, 65536);
        last if !defined $n || $n == 0;
        $len += $n;
        $sha->add($buf);
    }
    my $eof = eof(STDIN) ? 1 : 0;

    if ($q{detach}) {
        $req->Detach();
        my $pid = fork();
        die "fcgi_echo.pl: fork: $!\n" unless defined $pid;
        if ($pid == 0) {
            # detach=exit: a normal exit, which runs FCGI's destructor (FCGX_Free) in the child.
            exit 0 if $q{detach} eq "exit";
            POSIX::_exit(0);
        }
        waitpid($pid, 0);
        $req->Attach();
    }
    print STDERR "fcgi_echo.pl: warning for request $count\n" if $q{warn};

    my $body = "";
    $body .= "COUNT=$count\n";
    $body .= "PID=$$\n";
    for my $name (qw(REQUEST_METHOD QUERY_STRING CONTENT_LENGTH SCRIPT_NAME FCGI_ROLE)) {
        $body .= "$name=" . ($ENV{$name} // "") . "\n";
    }
    $body .= "BODY_LENGTH=$len\n";
    $body .= "BODY_SHA256=" . $sha->hexdigest . "\n";
    $body .= "EOF=$eof\n";
    $body .= "CONNECTIONS=" . connections() . "\n";

    print "Content-Type: text/plain\r\nContent-Length: " . length($body) . "\r\n\r\n";
    $req->Flush() if $q{flush};
    print $body;

    $req->LastCall() if $q{last};
    $req->Finish() unless $q{nofinish};
}
print STDERR "fcgi_echo.pl: accept returned $rc after $count requests\n";
exit 0;
