from tests.conftest import login


def test_home_page_welcomes_visitors(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "Yishi" in response.get_data(as_text=True)


def test_member_sees_their_community_on_home(client, make_community, make_member):
    compound = make_community("Sunny Garden")
    user = make_member(compound)
    login(client, user)
    page = client.get("/").get_data(as_text=True)
    assert "Sunny Garden" in page
