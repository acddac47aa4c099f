"""The seed's `requests` snippet, run unchanged in spirit against a server at argv[1]
(examples/rest_server.c in the tests). Exits non-zero with a message on any mismatch."""
import sys

import requests

BASE = sys.argv[1]


# GET request
def get_user(user_id):
    response = requests.get(f'{BASE}/users/{user_id}', timeout=10)
    response.raise_for_status()
    return response.json()


# POST request
def create_user(user_data):
    response = requests.post(
        f'{BASE}/users',
        json=user_data,
        headers={'Content-Type': 'application/json'},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def main():
    user = get_user(1)
    assert user['id'] == 1 and isinstance(user['name'], str), user

    created = create_user({'name': 'Katherine Johnson', 'role': 'mathematician'})
    assert created['name'] == 'Katherine Johnson' and created['id'] >= 3, created
    assert get_user(created['id']) == created

    try:
        get_user(999999)
        raise AssertionError('GET /users/999999 should raise')
    except requests.HTTPError as e:
        assert e.response.status_code == 404, e
        assert 'not found' in e.response.json()['error']
        assert str(e).startswith('404 Client Error: Not Found for url: '), str(e)

    # With session for multiple requests (connection kept alive between them)
    session = requests.Session()
    session.headers.update({'Authorization': 'Bearer token'})
    for i in range(20):
        r = session.get(f'{BASE}/users/2', timeout=10)
        r.raise_for_status()
        assert r.json()['id'] == 2

    bad = session.post(f'{BASE}/users', data='{"name": ', headers={'Content-Type': 'application/json'}, timeout=10)
    assert bad.status_code == 400 and 'invalid JSON' in bad.json()['error'], bad.text
    wrong = session.put(f'{BASE}/users', json={}, timeout=10)
    assert wrong.status_code == 405 and 'POST' in wrong.headers['Allow'], wrong.headers
    missing = session.get(f'{BASE}/nothing/here', timeout=10)
    assert missing.status_code == 404
    print('seed requests code: ok against', BASE)


if __name__ == '__main__':
    main()
