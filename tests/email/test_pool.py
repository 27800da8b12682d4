"""The Send Email target's SMTP connections: as many as asked, fewer when the server says so."""

import threading

import pytest

from connectors.base import ConnectorError
from connectors.email.pool import PooledSession, SessionPool


class _Closer:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _server_allowing(connections: int):
    opened = []

    def open_session() -> PooledSession:
        if len(opened) >= connections:
            raise ConnectorError("smtp.example.com refused the session (reply code 421)")
        session = PooledSession(smtp=object(), closer=_Closer())
        opened.append(session)
        return session

    return open_session, opened


def test_it_opens_up_to_its_limit_and_reuses_what_is_given_back():
    open_session, opened = _server_allowing(10)
    pool = SessionPool(open_session, limit=2)
    first, second = pool.take(), pool.take()
    pool.give_back(first)
    assert pool.take() is first
    assert len(opened) == 2 and second is not first


def test_a_server_that_allows_fewer_connections_shrinks_the_pool_instead_of_failing():
    open_session, opened = _server_allowing(2)
    pool = SessionPool(open_session, limit=4)
    held = [pool.take(), pool.take()]
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.take()))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and pool.limit == 2  # the third connection was refused: it waits for one of two
    pool.give_back(held[0])
    waiter.join(5)
    assert got == [held[0]] and len(opened) == 2


def test_without_any_connection_the_servers_refusal_reaches_the_message():
    open_session, _opened = _server_allowing(0)
    pool = SessionPool(open_session, limit=4)
    with pytest.raises(ConnectorError, match="421"):
        pool.take()


def test_a_421_on_one_of_several_connections_shrinks_the_pool_and_closes_it():
    open_session, _opened = _server_allowing(10)
    pool = SessionPool(open_session, limit=3)
    sessions = [pool.take() for _ in range(3)]
    pool.discard(sessions[0], server_is_full=True)
    assert sessions[0].closer.closed and pool.limit == 2
    pool.close()
