--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: login_failures; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.login_failures (
    id integer NOT NULL,
    username_key character varying(150) NOT NULL,
    failed_at timestamp with time zone NOT NULL
);


--
-- Name: login_failures_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.login_failures_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: login_failures_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.login_failures_id_seq OWNED BY public.login_failures.id;


--
-- Name: predictions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.predictions (
    id integer NOT NULL,
    user_id integer NOT NULL,
    result integer NOT NULL,
    confidence double precision NOT NULL,
    probabilities text NOT NULL,
    model_version character varying(64) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    image bytea NOT NULL,
    image_type character varying(100) NOT NULL,
    image_size integer NOT NULL,
    image_sha256 character varying(64) NOT NULL
);


--
-- Name: predictions_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.predictions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: predictions_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.predictions_id_seq OWNED BY public.predictions.id;


--
-- Name: schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_version (
    version integer NOT NULL,
    applied_at timestamp with time zone NOT NULL
);


--
-- Name: schema_version_version_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.schema_version_version_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: schema_version_version_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.schema_version_version_seq OWNED BY public.schema_version.version;


--
-- Name: tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tokens (
    id integer NOT NULL,
    user_id integer NOT NULL,
    token_hash character varying(64) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: tokens_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: tokens_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.tokens_id_seq OWNED BY public.tokens.id;


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id integer NOT NULL,
    username character varying(150) NOT NULL,
    username_key character varying(150) NOT NULL,
    email character varying(254) NOT NULL,
    password_hash character varying(255) NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: users_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.users_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: users_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;


--
-- Name: login_failures id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.login_failures ALTER COLUMN id SET DEFAULT nextval('public.login_failures_id_seq'::regclass);


--
-- Name: predictions id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.predictions ALTER COLUMN id SET DEFAULT nextval('public.predictions_id_seq'::regclass);


--
-- Name: schema_version version; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_version ALTER COLUMN version SET DEFAULT nextval('public.schema_version_version_seq'::regclass);


--
-- Name: tokens id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens ALTER COLUMN id SET DEFAULT nextval('public.tokens_id_seq'::regclass);


--
-- Name: users id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);


--
-- Data for Name: login_failures; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.login_failures VALUES (2, 'grace', '2026-11-25 15:00:56.819641+00');


--
-- Data for Name: predictions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.predictions VALUES (1, 1, 3, 0.999915599822998, '[6.388826534475811e-08, 2.9694081983825304e-16, 5.519340096071801e-09, 0.999915599822998, 1.4862371749968517e-11, 1.5411012743715702e-10, 3.3740896768176196e-14, 2.0517800999875213e-11, 8.343909576069564e-05, 8.722424809093354e-07]', 'sgd-8fdfa197ed06', '2026-11-25 15:00:56.767577+00', '\x89504e470d0a1a0a0000000d494844520000001c0000001c080000000057668048000000fc49444154789c6360189a40283a7affbfffffde450b6148f10aaefc0b05cb39d0e4f4eefe45802a98281384b255405229c08aa29173d3dfbf7fffde6d6cbcf6f7efdfbf7f612a59181818181858f51818aecd5fc3286cad8ec5a906678a8418542f42ecdcc28f26cbaf98f4ec0d44ee913686de1a846b4f55a2d8890a8c0d65f37fa38868407cfae3c7dfbf7ffffe85d8ca089795dfa473f8d6ef15bf2698313030087d44334dc55192818141b801a1131de8defa8b4b926fe683bf7ffffefdfb9417434ad97839c42f9dc61872d5cf5efdf9fbf7efe3c3f930ff21f953409c818181e163f831b8085a209c5d35eb1356871abdfb1b278b558674000056de89af8488c4c10000000049454e44ae426082', 'image/png', 309, 'b515423328a4864f60881f2120cc55756eb3d088bfb728012226fa07a9604e00');


--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_version VALUES (1, '2026-11-25 15:00:55.273126+00');
INSERT INTO public.schema_version VALUES (2, '2026-11-25 15:00:55.275139+00');


--
-- Data for Name: tokens; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tokens VALUES (1, 1, '514c6b5cc78970df2a4bf8315c03b414f901bb62adb394ffa5f16be501fe4faf', '2026-11-25 15:00:56.671567+00', '2026-12-25 15:00:56.671567+00');
INSERT INTO public.tokens VALUES (2, 1, '85dacb7944d280b8fc825d1459fbade602a68a22d44c3e28f68f1d7b1087912c', '2026-11-25 15:00:56.724627+00', '2026-12-25 15:00:56.724627+00');
INSERT INTO public.tokens VALUES (3, 2, '9de925132a56087618bc3a46cde90be54e735a3cc760250ecedc6cfacd7b8043', '2026-11-25 15:00:56.797869+00', '2026-12-25 15:00:56.797869+00');


--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.users VALUES (1, 'Ada', 'ada', 'ada@example.com', '$argon2id$v=19$m=19456,t=2,p=1$YKsiO/2R4DGCnJqXAS8dMA$IU6CvVJ2LBcsXdhVl062hYTPlcYmpYAPVK1me0YKnKk', '2026-11-25 15:00:56.669343+00');
INSERT INTO public.users VALUES (2, 'grace', 'grace', 'grace@example.com', '$argon2id$v=19$m=19456,t=2,p=1$7/c1c0omCkix8WcDrnaa8A$LXnWCpByh8upeh9gktVjPPw3hl7EIq5qDG3Mbc1Q2Ac', '2026-11-25 15:00:56.796841+00');


--
-- Name: login_failures_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.login_failures_id_seq', 2, true);


--
-- Name: predictions_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.predictions_id_seq', 1, true);


--
-- Name: schema_version_version_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.schema_version_version_seq', 1, false);


--
-- Name: tokens_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.tokens_id_seq', 3, true);


--
-- Name: users_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.users_id_seq', 2, true);


--
-- Name: login_failures login_failures_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.login_failures
    ADD CONSTRAINT login_failures_pkey PRIMARY KEY (id);


--
-- Name: predictions predictions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.predictions
    ADD CONSTRAINT predictions_pkey PRIMARY KEY (id);


--
-- Name: schema_version schema_version_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_version
    ADD CONSTRAINT schema_version_pkey PRIMARY KEY (version);


--
-- Name: tokens tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_pkey PRIMARY KEY (id);


--
-- Name: tokens tokens_token_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_token_hash_key UNIQUE (token_hash);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: users users_username_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_username_key_key UNIQUE (username_key);


--
-- Name: ix_login_failures_username_key; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_login_failures_username_key ON public.login_failures USING btree (username_key);


--
-- Name: ix_predictions_user_newest; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_predictions_user_newest ON public.predictions USING btree (user_id, created_at, id);


--
-- Name: predictions predictions_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.predictions
    ADD CONSTRAINT predictions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: tokens tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


